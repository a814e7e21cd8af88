"""Readiness means "this replica can answer its HTTP requests": outages of servers of the test's own.

Search is ready once it has caught up, then rides a broker outage out saying how old its data is; registry,
status and notify are ready while their PostgreSQL answers, whatever NATS does; a PostgreSQL that is frozen or
gone makes its service unready within the probe's time.
"""

import asyncio
import secrets
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import nats
import pytest

from poi_cli import embedded, stack
from poi_notify.app import MIGRATIONS as NOTIFY_MIGRATIONS
from poi_notify.app import create_app as create_notify
from poi_notify.settings import NotifySettings
from poi_registry.app import MIGRATIONS as REGISTRY_MIGRATIONS
from poi_registry.app import create_app as create_registry
from poi_registry.settings import RegistrySettings
from poi_search.app import create_app as create_search
from poi_search.settings import SearchSettings
from poi_shared import db, jetstream
from poi_shared.auth import issue_token
from poi_shared.contracts import (
    POINT_REGISTERED,
    HostType,
    PointCategory,
    PointState,
    Schedule,
    Service,
    Visibility,
)
from poi_shared.envelope import build_message
from poi_status.app import MIGRATIONS as STATUS_MIGRATIONS
from poi_status.app import create_app as create_status
from poi_status.settings import StatusSettings
from tests.integration.inprocess import NatsWithUsers, eventually, frozen, serving
from tests.prometheus import samples

pytestmark = pytest.mark.integration
SECRET = "readiness-test-secret-0123456789abcdef"
# Kubernetes waits this long for /readyz (deploy/k8s/base/*.yaml); the service promises well under it.
READYZ_BOUND_S = 1.0
NEAR = {"lat": 50.45, "lon": 30.52}
STREAM_HEAD = "$JS.API.STREAM.INFO.>"


def point_event(namespace: str) -> tuple[str, object]:
    point = PointState(
        id=uuid.uuid4(),
        code="80-000042",
        version=1,
        name_uk="Пункт незламності — бібліотека",
        category=PointCategory.state,
        host_type=HostType.library,
        lat=50.4501,
        lon=30.5234,
        address_uk="вул. Хрещатик, 1, Київ",
        settlement="Київ",
        katotth="UA80000000000093317",
        capacity=50,
        services=[Service.heat],
        schedule=Schedule(),
        visibility=Visibility.public,
        updated_at=datetime.now(UTC),
    )
    return str(point.id), build_message(
        namespace=namespace, event_type=POINT_REGISTERED, key=str(point.id), data=point, source="/test"
    )


async def readyz(client: httpx.AsyncClient) -> httpx.Response:
    """/readyz, which must answer within the probe's bound whatever its dependencies do."""
    return await asyncio.wait_for(client.get("/readyz"), READYZ_BOUND_S)


async def test_search_is_unready_until_caught_up_then_rides_a_broker_outage_out(tmp_path: Path, namespace: str) -> None:
    # The replica may not ask for the streams' heads yet, so it cannot know it has caught up.
    broker = NatsWithUsers(tmp_path, restricted_may_not_publish=[STREAM_HEAD])
    try:
        admin = await nats.connect(broker.url("admin"))
        await jetstream.ensure_streams(admin.jetstream(), namespace)
        point_id, message = point_event(namespace)
        await admin.jetstream().publish(message.subject, message.body, headers=message.headers)  # type: ignore[attr-defined]
        await admin.close()

        settings = SearchSettings(nats_url=broker.url("restricted"), namespace=namespace, startup_timeout_s=10)
        async with serving(create_search(settings)) as client:
            before = await readyz(client)
            assert before.status_code == 503
            assert before.headers["content-type"] == "application/problem+json"
            assert before.headers["retry-after"].isdigit()
            assert before.json()["checks"]["catalog"] == "catching up with the streams"
            assert before.json()["data_age_s"] is None
            query = await client.get("/v1/search/nearest", params=NEAR)
            assert query.status_code == 503 and query.headers["retry-after"].isdigit()
            assert query.headers["content-type"] == "application/problem+json"

            broker.reload([])
            await eventually(lambda: _status_is(client, 200), "search becomes ready once caught up")
            found = await client.get("/v1/search/nearest", params=NEAR)
            assert found.status_code == 200
            assert point_id in [item["id"] for item in found.json()["items"]]
            assert int(found.headers["x-data-age"]) >= 0 and found.json()["data_age_s"] >= 0

            broker.stop()
            during = await readyz(client)
            assert during.status_code == 200, during.text
            assert during.json()["status"] == "degraded" and during.json()["degraded"] == ["nats"]
            assert during.json()["checks"]["catalog"] == "ok"
            first_age = int((await client.get("/v1/search/nearest", params=NEAR)).headers["x-data-age"])
            later = await eventually(
                lambda: _older_than(client, first_age + 1), "the data age grows while the broker is away"
            )
            assert point_id in [item["id"] for item in later.json()["items"]], "search keeps answering"
            assert later.json()["data_age_s"] >= int(later.headers["x-data-age"]) >= first_age + 2
            scrape = samples((await client.get("/metrics")).text)
            assert scrape[("poi_nats_connected", ())] == 0
            assert scrape[("poi_search_points", ())] == 1
            assert scrape[("poi_search_data_age_seconds", ())] >= first_age + 2
    finally:
        broker.stop()


async def _status_is(client: httpx.AsyncClient, status: int) -> bool:
    return (await client.get("/readyz")).status_code == status


async def _older_than(client: httpx.AsyncClient, age_s: int) -> httpx.Response | None:
    response = await client.get("/v1/search/nearest", params=NEAR)
    return response if int(response.headers["x-data-age"]) > age_s else None


@pytest.fixture
def own_nats(tmp_path: Path) -> Iterator[embedded.ServerProcess]:
    server = embedded.start_nats(tmp_path, embedded.free_port())
    try:
        yield server
    finally:
        embedded.stop(server)


async def service_database(server_url: str, name: str, migrations: list[tuple[str, Path]]) -> str:
    await db.ensure_database(server_url, name)
    url = db.database_url(server_url, name)
    await db.migrate(url, migrations)
    return url


async def test_writers_stay_ready_while_postgresql_answers_even_with_the_broker_frozen_or_gone(
    infra: stack.Infrastructure, namespace: str, own_nats: embedded.ServerProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("POI_AUTH_SECRET", SECRET)
    suffix = secrets.token_hex(3)
    databases = {
        name: await service_database(infra.database_url, f"{namespace}_{name}_{suffix}", migrations)
        for name, migrations in (
            ("registry", REGISTRY_MIGRATIONS),
            ("status", STATUS_MIGRATIONS),
            ("notify", NOTIFY_MIGRATIONS),
        )
    }
    broker = own_nats.url
    async with (
        serving(create_registry(RegistrySettings(database_url=databases["registry"], nats_url=broker))) as registry,
        serving(
            create_status(StatusSettings(database_url=databases["status"], nats_url=broker, redis_url=infra.redis_url))
        ) as status,
        serving(
            create_notify(NotifySettings(database_url=databases["notify"], nats_url=broker, phone_key="test-phone-key"))
        ) as notify,
    ):
        clients = {"registry": registry, "status": status, "notify": notify}
        for name, client in clients.items():
            ready = await readyz(client)
            assert ready.status_code == 200 and ready.json()["status"] == "ready", f"{name}: {ready.text}"

        with frozen(own_nats):  # connected, never answering
            for name, client in clients.items():
                ready = await readyz(client)
                assert ready.status_code == 200, f"{name}: {ready.text}"
                assert ready.json()["checks"]["nats"].startswith("failed"), name
                assert ready.json()["checks"]["postgresql"] == "ok", name

        embedded.stop(own_nats)  # a broker gone
        for name, client in clients.items():
            ready = await readyz(client)
            assert ready.status_code == 200, f"{name}: {ready.text}"
            assert ready.json()["degraded"] == ["nats"], name

        # A write is still accepted: its event waits in the outbox, as /metrics shows.
        token = issue_token(SECRET, subject="c-1", roles=["coordinator"], katotth=["UA80"])
        created = await registry.post(
            "/v1/points",
            json={
                "name_uk": "Пункт незламності",
                "category": "state",
                "lat": 50.45,
                "lon": 30.52,
                "katotth": "UA80000000000093317",
                "address_uk": "вул. Хрещатик, 1, Київ",
                "settlement": "Київ",
                "capacity": 10,
            },
            headers={"Authorization": f"Bearer {token}"},
        )
        assert created.status_code == 201, created.text
        scrape = samples((await registry.get("/metrics")).text)
        assert scrape[("poi_outbox_pending_messages", ())] == 1
        assert scrape[("poi_nats_connected", ())] == 0


@pytest.fixture
def own_postgres(server_dir: Path) -> Iterator[embedded.ServerProcess]:
    server = embedded.start_postgres(server_dir, embedded.free_port(), durable=False)
    try:
        yield server
    finally:
        embedded.stop(server)


async def test_a_service_whose_postgresql_is_frozen_or_gone_is_unready_within_the_probe_time(
    own_postgres: embedded.ServerProcess, own_nats: embedded.ServerProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("POI_AUTH_SECRET", SECRET)
    database_url = await service_database(own_postgres.url, "registry", REGISTRY_MIGRATIONS)
    settings = RegistrySettings(database_url=database_url, nats_url=own_nats.url, startup_timeout_s=10)
    async with serving(create_registry(settings)) as client:
        assert (await readyz(client)).status_code == 200

        with frozen(own_postgres):
            stuck = await readyz(client)
        assert stuck.status_code == 503 and stuck.headers["retry-after"].isdigit()
        assert stuck.headers["content-type"] == "application/problem+json"
        assert stuck.json()["checks"]["postgresql"].startswith("failed: no answer within")
        await eventually(lambda: _status_is(client, 200), "ready again once PostgreSQL answers")

        embedded.stop(own_postgres)
        gone = await readyz(client)
        assert gone.status_code == 503, gone.text
        assert gone.json()["checks"]["postgresql"].startswith("failed")
        assert gone.json()["checks"]["nats"] == "ok"
        assert (await client.get("/livez")).status_code == 200, "liveness never looks at dependencies"
