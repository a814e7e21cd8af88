"""The AsyncAPI 3.0 document of the event contract, built from contracts.py so the two cannot drift."""

import copy
import re

import yaml
from pydantic import BaseModel

from poi_shared.contracts import DEAD_LETTERS, EVENT_TYPES, POINTS, REPLAY, STATUS, STREAMS, EventType, StreamSpec
from poi_shared.envelope import CONTENT_TYPE, REQUIRED_HEADERS, SPEC_VERSION
from poi_shared.jetstream import DEAD_CONSUMER, DEAD_REASON, DEAD_SUBJECT, ORIGINAL_SUBJECT

ASYNCAPI_VERSION = "3.0.0"
SCHEMA_REF_TEMPLATE = "#/components/schemas/{model}"
DEAD_LETTER_MESSAGE = "dead_letter"
REPLAYED_MESSAGE = "replayed_dead_letter"

PRODUCERS: dict[str, tuple[StreamSpec, ...]] = {"registry": (POINTS,), "status": (STATUS,)}
"""Which service publishes to which stream."""

CONSUMERS: dict[str, tuple[StreamSpec, ...]] = {"notify": (STATUS,), "search": (POINTS, STATUS), "status": (POINTS,)}
"""Which service consumes which stream."""

DURABLE_CONSUMERS = ("notify", "status")
"""Services whose consumers are durable: they dead-letter what they give up on and take replayed dead letters back.
Search follows the streams with per-replica ordered consumers and skips what it cannot read."""

SUBJECT_KEYS: dict[str, tuple[str, str]] = {
    POINTS.token: ("pointId", "Id (UUID) of the point: one subject per point, so the last message rebuilds it."),
    STATUS.token: ("pointId", "Id (UUID) of the point whose status this is: the last message is its current status."),
    DEAD_LETTERS.token: ("consumer", "Name of the durable consumer that gave up on the message, e.g. status-points."),
    REPLAY.token: ("consumer", "Name of the durable consumer the dead letters are sent back to, e.g. notify-status."),
}
"""Per stream token: the channel parameter naming the last subject token, and its description."""

DESCRIPTION = (
    "Every event of the Points of Invincibility backend, published to NATS JetStream.\n\n"
    "Events are CloudEvents 1.0 in NATS binary mode: the attributes travel as `ce-*` headers (`ce-id`, `ce-source`, "
    "`ce-type`, `ce-specversion`, `ce-time`, `ce-subject`, `ce-datacontenttype`), `Nats-Msg-Id` repeats `ce-id` so "
    "JetStream drops duplicates, W3C `traceparent`/`tracestate` carry the trace context, and the body is the JSON "
    "data model.\n\n"
    "Every event carries the full current state of its entity and a `version` that grows by one with every change, "
    "so a consumer applies an event only when it is newer than what it holds. Subjects are per key (one subject per "
    "point), so the last message per subject rebuilds the current state.\n\n"
    "A durable consumer retries a message whose handling fails because a dependency is down for as long as the "
    "outage lasts. It gives up only on poison: a message it cannot decode or that breaks the contract, one its "
    "handler refuses, or one that fails with an unexpected error a few times in a row. Those go to the dead-letter "
    "stream with their original headers and body, plus `Poi-Dead-*` headers saying who gave up, why, and on which "
    "subject. `poi deadletters replay` sends a dead letter back to that one consumer through the replay stream, "
    "never to its original subject, where an old event would become the last message of the subject."
)


def message_id(event_type: EventType) -> str:
    """The component key of an event type's message, e.g. ua_poi_point_registered_v1."""
    return re.sub(r"[^A-Za-z0-9_-]", "_", event_type.type)


def model_schema(model: type[BaseModel]) -> tuple[dict[str, object], dict[str, object]]:
    """A model's JSON schema without its $defs, and the $defs, with refs into components.schemas."""
    schema = copy.deepcopy(model.model_json_schema(ref_template=SCHEMA_REF_TEMPLATE))
    defs = schema.pop("$defs", {})
    return schema, defs


def event_headers(event_type: EventType) -> dict[str, object]:
    """The JSON Schema of the CloudEvents binary-mode headers of one event type."""
    properties: dict[str, object] = {
        "ce-id": {"type": "string", "format": "uuid", "description": "Unique id of the event."},
        "ce-source": {"type": "string", "description": "The producing service, e.g. /poi/registry or /poi/status."},
        "ce-type": {"type": "string", "const": event_type.type, "description": "The versioned event type."},
        "ce-specversion": {"type": "string", "const": SPEC_VERSION, "description": "CloudEvents version."},
        "ce-time": {"type": "string", "format": "date-time", "description": "When the event was produced."},
        "ce-subject": {"type": "string", "description": "The key of the entity: the last token of the subject."},
        "ce-datacontenttype": {"type": "string", "const": CONTENT_TYPE, "description": "Content type of the body."},
        "Nats-Msg-Id": {"type": "string", "description": "Equals ce-id: JetStream de-duplicates on it."},
        "traceparent": {"type": "string", "description": "W3C trace context of the producing request."},
        "tracestate": {"type": "string", "description": "W3C trace state, when there is any."},
    }
    return {"type": "object", "required": list(REQUIRED_HEADERS), "properties": properties}


def dead_letter_headers() -> dict[str, object]:
    """The JSON Schema of a dead-letter message's headers: the original ones plus the Poi-Dead-* ones."""
    properties: dict[str, object] = {
        DEAD_CONSUMER: {"type": "string", "description": "The durable consumer that gave up."},
        DEAD_REASON: {"type": "string", "maxLength": 1000, "description": "Why it gave up."},
        DEAD_SUBJECT: {"type": "string", "description": "The subject the message was originally published on."},
        "Nats-Msg-Id": {
            "type": "string",
            "description": "<consumer>:<stream>:<stream sequence of the delivered message>, so a dead letter "
            "written twice is stored once.",
        },
    }
    for name in REQUIRED_HEADERS:
        properties[name] = {"type": "string", "description": "Kept from the original message, when it had one."}
    return {
        "type": "object",
        "required": [DEAD_CONSUMER, DEAD_REASON, DEAD_SUBJECT, "Nats-Msg-Id"],
        "properties": properties,
        "additionalProperties": {"type": "string", "description": "Any other header of the original message."},
    }


def event_message(event_type: EventType, payload: dict[str, object]) -> dict[str, object]:
    """The AsyncAPI message of one event type."""
    return {
        "name": event_type.type,
        "title": event_type.type,
        "summary": event_type.summary,
        "contentType": CONTENT_TYPE,
        "headers": event_headers(event_type),
        "payload": payload,
    }


def dead_letter_message() -> dict[str, object]:
    """The AsyncAPI message of the dead-letter stream."""
    return {
        "name": "dead-letter",
        "title": "Dead letter",
        "summary": "A message a consumer gave up on: original headers and body, plus why.",
        "contentType": CONTENT_TYPE,
        "headers": dead_letter_headers(),
        "payload": {"description": "The original message body, unchanged: any JSON (or not, for a poison message)."},
    }


def replayed_headers() -> dict[str, object]:
    """The JSON Schema of a replayed dead letter's headers: the original ones plus the original subject."""
    properties: dict[str, object] = {
        ORIGINAL_SUBJECT: {"type": "string", "description": "The subject the message was originally published on."},
        "Nats-Msg-Id": {
            "type": "string",
            "description": "replay:<dead-letter stream sequence>: replaying a dead letter twice sends it once.",
        },
    }
    for name in REQUIRED_HEADERS:
        properties[name] = {"type": "string", "description": "Kept from the original message, when it had one."}
    return {
        "type": "object",
        "required": [ORIGINAL_SUBJECT, "Nats-Msg-Id"],
        "properties": properties,
        "additionalProperties": {"type": "string", "description": "Any other header of the original message."},
    }


def replayed_message() -> dict[str, object]:
    """The AsyncAPI message of the replay stream."""
    return {
        "name": "replayed-dead-letter",
        "title": "Replayed dead letter",
        "summary": "A dead letter sent back to the consumer that gave up on it: original headers and body.",
        "contentType": CONTENT_TYPE,
        "headers": replayed_headers(),
        "payload": {"description": "The original message body, unchanged."},
    }


def stream_message_ids(stream: StreamSpec) -> list[str]:
    """The message keys a stream carries, sorted."""
    if stream == DEAD_LETTERS:
        return [DEAD_LETTER_MESSAGE]
    if stream == REPLAY:
        return [REPLAYED_MESSAGE]
    return sorted(message_id(e) for e in EVENT_TYPES.values() if e.stream == stream)


def channel(stream: StreamSpec, namespace: str) -> dict[str, object]:
    """The AsyncAPI channel of one stream, addressed per key."""
    param, param_description = SUBJECT_KEYS[stream.token]
    return {
        "address": stream.subject(namespace, "{" + param + "}"),
        "title": stream.stream_name(namespace),
        "description": f"{stream.description} JetStream stream {stream.stream_name(namespace)} {retention(stream)}.",
        "parameters": {param: {"description": param_description}},
        "messages": {m: {"$ref": f"#/components/messages/{m}"} for m in stream_message_ids(stream)},
    }


def retention(stream: StreamSpec) -> str:
    """What the stream keeps, in words, e.g. 'keeps the last 64 messages per subject'."""
    keep = "all" if stream.max_msgs_per_subject < 0 else f"the last {stream.max_msgs_per_subject}"
    words = f"keeps {keep} messages per subject"
    if stream.work_queue:
        words = "keeps each message until its consumer acknowledges it"
    limits = []
    if stream.max_age_s:
        limits.append(f"{stream.max_age_s / 86400:g} days")
    if stream.max_bytes >= 0:
        limits.append(f"{stream.max_bytes / 1024**3:g} GiB")
    if limits:
        words += f", for at most {' and '.join(limits)} (the oldest messages are discarded first)"
    return words


def operation(service: str, action: str, stream: StreamSpec, namespace: str) -> dict[str, object]:
    """One service sending to or receiving from one stream's channel."""
    name = stream.stream_name(namespace)
    summary = {
        "send": f"{service} publishes to {name}.",
        "receive": f"{service} consumes {name} with a durable pull consumer."
        if service in DURABLE_CONSUMERS
        else f"{service} follows {name} with an ordered consumer per replica.",
    }[action]
    return {
        "action": action,
        "channel": {"$ref": f"#/channels/{stream.token}"},
        "summary": summary,
        "messages": [{"$ref": f"#/channels/{stream.token}/messages/{m}"} for m in stream_message_ids(stream)],
    }


def operations(namespace: str) -> dict[str, object]:
    """Every send and receive operation of the services, sorted by id."""
    ops: dict[str, object] = {}
    for service, streams in PRODUCERS.items():
        for stream in streams:
            ops[f"{service}_send_{stream.token}"] = operation(service, "send", stream, namespace)
    for service, streams in CONSUMERS.items():
        for stream in streams:
            ops[f"{service}_receive_{stream.token}"] = operation(service, "receive", stream, namespace)
    for service in DURABLE_CONSUMERS:
        ops[f"{service}_send_{DEAD_LETTERS.token}"] = operation(service, "send", DEAD_LETTERS, namespace)
        ops[f"{service}_receive_{REPLAY.token}"] = operation(service, "receive", REPLAY, namespace)
    return dict(sorted(ops.items()))


def build_document(namespace: str = "poi") -> dict[str, object]:
    """Build the AsyncAPI 3.0 document of every stream, event type and service operation."""
    schemas: dict[str, object] = {}
    messages: dict[str, object] = {}
    for event_type in sorted(EVENT_TYPES.values(), key=lambda e: e.type):
        payload, defs = model_schema(event_type.data)
        schemas.update(defs)
        messages[message_id(event_type)] = event_message(event_type, payload)
    messages[DEAD_LETTER_MESSAGE] = dead_letter_message()
    messages[REPLAYED_MESSAGE] = replayed_message()
    return {
        "asyncapi": ASYNCAPI_VERSION,
        "info": {
            "title": "Points of Invincibility events",
            "version": "1.0.0",
            "description": DESCRIPTION,
        },
        "defaultContentType": CONTENT_TYPE,
        "servers": {
            "nats": {
                "host": "localhost:4222",
                "protocol": "nats",
                "description": "Local development NATS with JetStream; deployments take the real URL from settings.",
            }
        },
        "channels": {stream.token: channel(stream, namespace) for stream in STREAMS},
        "operations": operations(namespace),
        "components": {
            "schemas": dict(sorted(schemas.items())),
            "messages": dict(sorted(messages.items())),
        },
    }


def render_yaml(namespace: str = "poi") -> str:
    """The document as YAML, exactly as committed in docs/asyncapi.yaml."""
    return yaml.safe_dump(build_document(namespace), sort_keys=False, allow_unicode=True)
