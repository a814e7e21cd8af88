"""CloudEvents 1.0 in NATS binary mode: ce-* headers, JSON data as the body."""

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from opentelemetry import propagate
from pydantic import BaseModel, ValidationError

from poi_shared.contracts import EVENT_TYPES, EventType

SPEC_VERSION = "1.0"
CONTENT_TYPE = "application/json"
REQUIRED_HEADERS = ("ce-id", "ce-source", "ce-type", "ce-specversion", "ce-time")


class PoisonMessage(Exception):
    """A message no retry can fix: it is dead-lettered, never redelivered."""


@dataclass(frozen=True, slots=True)
class OutgoingMessage:
    """A message ready to publish: written to the outbox, then sent by the relay."""

    event_id: str
    subject: str
    headers: dict[str, str]
    body: bytes


@dataclass(frozen=True, slots=True)
class Event:
    """An event as a consumer receives it."""

    id: str
    type: str
    source: str
    subject: str
    time: datetime
    headers: dict[str, str]
    data: BaseModel

    @property
    def spec(self) -> EventType:
        """The contract entry of this event's type."""
        return EVENT_TYPES[self.type]


def build_message(*, namespace: str, event_type: EventType, key: str, data: BaseModel, source: str) -> OutgoingMessage:
    """Wrap event data in an envelope, carrying the current trace context."""
    event_id = str(uuid.uuid4())
    headers = {
        "ce-id": event_id,
        "ce-source": source,
        "ce-type": event_type.type,
        "ce-specversion": SPEC_VERSION,
        "ce-time": datetime.now(UTC).isoformat(),
        "ce-subject": key,
        "ce-datacontenttype": CONTENT_TYPE,
        "Nats-Msg-Id": event_id,
    }
    propagate.inject(headers)
    subject = event_type.stream.subject(namespace, key)
    return OutgoingMessage(event_id, subject, headers, data.model_dump_json().encode())


def parse_message(headers: dict[str, str] | None, body: bytes) -> Event:
    """Read an envelope; anything malformed or of an unknown type is poison."""
    headers = headers or {}
    missing = [h for h in REQUIRED_HEADERS if not headers.get(h)]
    if missing:
        raise PoisonMessage(f"missing CloudEvents headers: {', '.join(missing)}")
    if headers["ce-specversion"] != SPEC_VERSION:
        raise PoisonMessage(f"unsupported ce-specversion {headers['ce-specversion']!r}")
    spec = EVENT_TYPES.get(headers["ce-type"])
    if spec is None:
        raise PoisonMessage(f"unknown ce-type {headers['ce-type']!r}")
    try:
        time = datetime.fromisoformat(headers["ce-time"])
        data = spec.data.model_validate_json(body)
    except (ValueError, ValidationError) as exc:
        raise PoisonMessage(f"invalid {spec.type} event: {exc}") from exc
    return Event(
        id=headers["ce-id"],
        type=spec.type,
        source=headers["ce-source"],
        subject=headers.get("ce-subject", ""),
        time=time,
        headers=headers,
        data=data,
    )
