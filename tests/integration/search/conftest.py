"""One search app for the session on the real NATS and Redis, fed the events registry and status publish.

Events are built with the shared contract and published to the app's own streams exactly as the registry and
status services publish them (CloudEvents headers, per-point subjects), so each test can set up the precise
history it needs: duplicates, events out of order, hidden and coarse points. Each test works in an area of its
own (see `Area`), so the points of one never show in another's answers.
"""

import asyncio
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import nats
import pytest
from fastapi.testclient import TestClient

from poi_cli import stack
from poi_search.app import create_app as create_search
from poi_search.settings import SearchSettings
from poi_shared import jetstream
from poi_shared.contracts import (
    POINT_REGISTERED,
    POINT_UPDATED,
    STATUS_CHANGED,
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
from tests.integration.routes.conftest import POLL_BOUND_S, Bearer, bearer, serve

pytestmark = pytest.mark.integration
WINDOW_S = 3600  # rate-limit windows long enough that no test straddles two (see away_from_window_end)
Event = PointState | StatusState
__all__ = ["bearer"]  # the route tests' token factory, as a fixture here too


@pytest.fixture(scope="session")
def search_namespace(infra: stack.Infrastructure, namespace: str) -> Iterator[str]:
    """The search tests' own namespace: streams, key bucket and rate-limit counters, removed at the end."""
    ns = f"{namespace}s"
    yield ns
    asyncio.run(drop_namespace(infra, ns))


def search_settings(infra: stack.Infrastructure, namespace: str, **changes: Any) -> SearchSettings:
    """Settings for a search app on the session's servers."""
    values: dict[str, Any] = {
        "nats_url": infra.nats_url,
        "redis_url": infra.redis_url,
        "namespace": namespace,
        "index_merge_s": 0.2,
        "export_max_age_s": 0,
        "rate_limit_sync_s": 0.05,
        "rate_limit_window_s": WINDOW_S,
        "rate_limit_ip": 100_000,
    }
    return SearchSettings(**{**values, **changes})


def away_from_window_end(margin_s: float = 30.0) -> None:
    """Wait, if need be, for a new rate-limit window: a test's requests then all count in the same one."""
    left = WINDOW_S - time.time() % WINDOW_S
    if left < margin_s:
        time.sleep(left + 0.1)


@pytest.fixture(scope="session")
def search(infra: stack.Infrastructure, search_namespace: str) -> Iterator[TestClient]:
    """The search app, every response checked against its OpenAPI document."""
    yield from serve(create_search(search_settings(infra, search_namespace)))


@dataclass
class Feed:
    """Publishes point and status events to a search app's streams, and waits until the app has applied them."""

    nats_url: str
    namespace: str
    client: TestClient
    heads: dict[str, int] = field(default_factory=dict)

    def publish(self, *events: Event, repeat_of: OutgoingMessage | None = None) -> list[OutgoingMessage]:
        """Publish events (a point event registers on version 1, updates after), then wait until applied."""
        messages = [repeat_of] if repeat_of is not None else [self.message(e) for e in events]
        self.heads.update(asyncio.run(self._publish(messages)))
        self.wait()
        return messages

    def message(self, event: Event) -> OutgoingMessage:
        """The event as its producer would publish it."""
        if isinstance(event, PointState):
            event_type = POINT_REGISTERED if event.version == 1 else POINT_UPDATED
            return build_message(
                namespace=self.namespace, event_type=event_type, key=str(event.id), data=event, source="/test"
            )
        return build_message(
            namespace=self.namespace, event_type=STATUS_CHANGED, key=str(event.point_id), data=event, source="/test"
        )

    def repeat(self, message: OutgoingMessage) -> None:
        """Publish the same event again under a new message id: past the broker's de-duplication."""
        headers = {**message.headers, "Nats-Msg-Id": str(uuid.uuid4())}
        self.publish(repeat_of=OutgoingMessage(message.event_id, message.subject, headers, message.body))

    async def _publish(self, messages: list[OutgoingMessage]) -> dict[str, int]:
        nc = await nats.connect(self.nats_url)
        try:
            js = nc.jetstream()
            await jetstream.ensure_streams(js, self.namespace)
            heads: dict[str, int] = {}
            for message in messages:
                ack = await js.publish(message.subject, message.body, headers=message.headers)
                heads[ack.stream] = max(heads.get(ack.stream, 0), ack.seq)
            return heads
        finally:
            await nc.close()

    def wait(self) -> None:
        """Until the app has applied everything published so far."""
        progress = self.client.app.state.progress  # type: ignore[attr-defined]
        deadline = time.monotonic() + POLL_BOUND_S
        names = {f"{self.namespace.upper()}_{name}": name for name in progress}
        while any(progress[names[stream]].applied_seq < seq for stream, seq in self.heads.items()):
            assert time.monotonic() < deadline, "search did not apply the events in time"
            time.sleep(0.02)


@pytest.fixture(scope="session")
def feed(infra: stack.Infrastructure, search_namespace: str, search: TestClient) -> Feed:
    """A feed into the session's search app."""
    return Feed(infra.nats_url, search_namespace, search)


@dataclass(frozen=True)
class Area:
    """A test's own patch of the map (a degree square far from the others) and its own KATOTTH oblast."""

    lat: float
    lon: float
    katotth: str

    def point(self, dlat: float = 0.0, dlon: float = 0.0, **changes: Any) -> PointState:
        """A public point dlat, dlon degrees from the area's centre."""
        base: dict[str, Any] = {
            "id": uuid.uuid4(),
            "code": "TEST-000001",
            "version": 1,
            "name_uk": "Пункт незламності",
            "category": PointCategory.state,
            "host_type": HostType.school,
            "lat": self.lat + dlat,
            "lon": self.lon + dlon,
            "katotth": self.katotth,
            "address_uk": "вул. Центральна, 1",
            "settlement": "Тестове",
            "capacity": 100,
            "services": [Service.heat, Service.charging],
            "schedule": Schedule(),
            "visibility": Visibility.public,
            "updated_at": datetime.now(UTC),
        }
        return PointState.model_validate({**base, **changes})

    def near(self, **params: Any) -> dict[str, Any]:
        """Query parameters of a nearest query at the area's centre."""
        return {"lat": self.lat, "lon": self.lon, **params}


def status(of: PointState, **changes: Any) -> StatusState:
    """An open status of the point, reported now."""
    base: dict[str, Any] = {
        "point_id": of.id,
        "version": 1,
        "state": OpenState.open,
        "reported_at": datetime.now(UTC),
        "reported_by": "operator",
    }
    return StatusState.model_validate({**base, **changes})


def admin_headers(bearer: Bearer) -> dict[str, str]:
    """An admin's token."""
    return bearer("admin")


def area(n: int) -> Area:
    """The n-th test area: a spot 5 degrees of longitude from the next, KATOTTH oblast code n."""
    return Area(10.0, -60.0 + 5 * n, f"UA{n:02d}{'0' * 15}")
