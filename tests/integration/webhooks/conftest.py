"""A notify app of the webhook tests' own, the events it consumes, and a real HTTP receiver on 127.0.0.1.

Point and status events are built with the shared contract and published to the app's own streams as registry and
status publish them, so each test sets up exactly the history it needs (hidden points, repeats, other areas).
"""

import asyncio
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import nats
import pytest
from fastapi.testclient import TestClient

from poi_cli import stack
from poi_notify.app import create_app
from poi_notify.settings import NotifySettings
from poi_shared.auth import issue_token
from poi_shared.contracts import (
    POINT_REGISTERED,
    STATUS_CHANGED,
    EventType,
    HostType,
    OpenState,
    PointCategory,
    PointState,
    Schedule,
    Service,
    StatusState,
    Visibility,
)
from poi_shared.envelope import OutgoingMessage, build_message
from tests.conftest import drop_namespace
from tests.integration.routes.conftest import SECRET, bearer, serve

pytestmark = pytest.mark.integration
DISABLE_AFTER_DEAD = 3  # more than any other test dead-letters in a row
MAX_ATTEMPTS = 3
__all__ = ["bearer"]  # the route tests' token factory, as a fixture here too


@pytest.fixture(scope="session")
def webhooks_namespace(infra: stack.Infrastructure, namespace: str) -> Iterator[str]:
    """The webhook tests' own namespace: databases and streams removed at the end."""
    ns = f"{namespace}w"
    yield ns
    asyncio.run(drop_namespace(infra, ns))


@pytest.fixture(scope="module")
def notify(infra: stack.Infrastructure, webhooks_namespace: str) -> Iterator[TestClient]:
    """Notify allowing http://127.0.0.1 endpoints, retrying fast, for one module: responses checked against OpenAPI."""
    urls = asyncio.run(stack.prepare_databases(infra.database_url, webhooks_namespace))
    settings = NotifySettings(
        database_url=urls["notify"],
        nats_url=infra.nats_url,
        redis_url=infra.redis_url,
        namespace=webhooks_namespace,
        phone_key="test-phone-key",
        db_pool_max=4,  # the PostgreSQL server is shared with every other app of the session
        webhook_allow_loopback_http=True,
        webhook_max_attempts=MAX_ATTEMPTS,
        webhook_disable_after_dead=DISABLE_AFTER_DEAD,
        webhook_retry_initial_s=0.05,
        webhook_retry_max_s=0.2,
        webhook_poll_s=0.05,
        webhook_timeout_s=5,
        consumer_retry_initial_s=0.05,
        consumer_retry_max_s=0.2,
    )
    yield from serve(create_app(settings))


def integrator(subject: str) -> dict[str, str]:
    """Authorization headers of an integrator account."""
    return {"Authorization": f"Bearer {issue_token(SECRET, subject=subject, roles=['integrator'])}"}


@dataclass
class Received:
    """One POST the receiver got."""

    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    """An HTTP server on 127.0.0.1 that records every POST and answers fail_status to the first fail_first."""

    server: ThreadingHTTPServer
    received: list[Received] = field(default_factory=list)
    fail_first: int = 0
    fail_status: int = 500
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        """Where to register it."""
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def fail(self, times: int, status: int = 500) -> None:
        """Answer status to the next `times` requests."""
        with self.lock:
            self.fail_first, self.fail_status = times, status

    def posts(self) -> list[Received]:
        """What arrived so far."""
        with self.lock:
            return list(self.received)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A fresh receiver for one test."""
    holder: list[Receiver] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", "0")))
            target = holder[0]
            with target.lock:
                target.received.append(Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body))
                failing = target.fail_first > 0
                if failing:
                    target.fail_first -= 1
                status = target.fail_status if failing else 204
            self.send_response(status)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    holder.append(Receiver(server))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield holder[0]
    server.shutdown()
    server.server_close()


@dataclass
class Events:
    """Publishes point and status events to the notify app's streams, as registry and status do."""

    nats_url: str
    namespace: str
    versions: dict[uuid.UUID, int] = field(default_factory=dict)

    def point(
        self,
        *,
        katotth: str = "UA80000000000093317",
        lat: float = 50.4501,
        lon: float = 30.5234,
        publish: bool = True,
        **changes: Any,
    ) -> PointState:
        """A new point (public, in Kyiv unless told otherwise), registered unless publish is False."""
        point = PointState(
            id=uuid.uuid4(),
            code=f"T-{uuid.uuid4().hex[:8].upper()}",
            version=1,
            name_uk="Пункт незламності",
            category=PointCategory.state,
            host_type=HostType.school,
            lat=lat,
            lon=lon,
            address_uk="вул. Хрещатик, 1",
            settlement="Київ",
            katotth=katotth,
            capacity=100,
            services=[Service.heat],
            schedule=Schedule(),
            visibility=changes.pop("visibility", Visibility.public),
            updated_at=datetime.now(UTC),
            **changes,
        )
        if publish:
            self.register(point)
        return point

    def register(self, point: PointState) -> None:
        """Publish the point's registration."""
        self.publish(self.message(POINT_REGISTERED, str(point.id), point))

    def status(
        self, point: PointState, state: OpenState = OpenState.open, event_type: EventType = STATUS_CHANGED
    ) -> OutgoingMessage:
        """The point's next status version, published; returns the message (its event id)."""
        version = self.versions.get(point.id, 0) + 1
        self.versions[point.id] = version
        now = datetime.now(UTC)
        status = StatusState(
            point_id=point.id, version=version, state=state, reported_at=now, changed_at=now, reported_by="tests"
        )
        message = self.message(event_type, str(point.id), status)
        self.publish(message)
        return message

    def message(self, event_type: EventType, key: str, data: Any) -> OutgoingMessage:
        """An event as its producer builds it."""
        return build_message(namespace=self.namespace, event_type=event_type, key=key, data=data, source="/tests")

    def repeat(self, message: OutgoingMessage) -> None:
        """The same event again under a new message id: past the broker's de-duplication."""
        headers = {**message.headers, "Nats-Msg-Id": str(uuid.uuid4())}
        self.publish(OutgoingMessage(message.event_id, message.subject, headers, message.body))

    def publish(self, message: OutgoingMessage) -> None:
        """Publish and wait for the broker's acknowledgement."""

        async def send() -> None:
            nc = await nats.connect(self.nats_url)
            try:
                js = nc.jetstream()  # the streams are the notify app's: it made them at start
                await js.publish(message.subject, message.body, headers=message.headers)
            finally:
                await nc.close()

        asyncio.run(send())


@pytest.fixture
def events(infra: stack.Infrastructure, webhooks_namespace: str, notify: TestClient) -> Events:
    """A publisher into the notify app's streams."""
    return Events(infra.nats_url, webhooks_namespace)
