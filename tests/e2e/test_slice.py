"""One point through all four services: registered, found, reported open, observed by notify exactly once."""

import json
import time
import uuid
from collections.abc import Callable
from typing import Any

import asyncpg
import httpx
import nats
import pytest

from poi_notify.events import STATUS_CONSUMER
from poi_shared.contracts import STATUS
from tests.e2e.conftest import RunningStack

pytestmark = pytest.mark.e2e
POLL_BOUND_S = 30.0  # generous so CI never flakes; the real latency is measured by a benchmark

POINT = {
    "name_uk": "Пункт незламності — Ліцей №5",
    "name_en": "Invincibility Point — Lyceum No. 5",
    "category": "state",
    "lat": 50.4501,
    "lon": 30.5234,
    "katotth": "UA80000000000093317",
    "address_uk": "вул. Хрещатик, 1, Київ",
    "settlement": "Київ",
    "capacity": 120,
    "services": ["heat", "charging", "internet"],
    "visibility": "public",
}


def eventually(probe: Callable[[], Any], what: str) -> Any:
    """Poll until probe returns something truthy."""
    deadline = time.monotonic() + POLL_BOUND_S
    while time.monotonic() < deadline:
        result = probe()
        if result:
            return result
        time.sleep(0.1)
    raise AssertionError(f"{what} did not happen within {POLL_BOUND_S:.0f}s")


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def find_in_search(client: httpx.Client, services: RunningStack, point_id: str) -> dict[str, Any] | None:
    response = client.get(
        f"{services.urls['search']}/v1/search/nearest", params={"lat": 50.45, "lon": 30.52, "limit": 50}
    )
    assert response.status_code == 200, response.text
    return next((item for item in response.json()["items"] if item["id"] == point_id), None)


async def observations(services: RunningStack, point_id: str) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(services.database_urls["notify"])
    try:
        return await conn.fetch(
            "SELECT event_id, version, state FROM status_observations WHERE point_id = $1", uuid.UUID(point_id)
        )
    finally:
        await conn.close()


async def test_point_flows_through_all_services(services: RunningStack) -> None:
    coordinator = services.token(["coordinator"], katotth=["UA80"])
    with httpx.Client(timeout=10) as client:
        created = client.post(f"{services.urls['registry']}/v1/points", json=POINT, headers=bearer(coordinator))
        assert created.status_code == 201, created.text
        point = created.json()
        point_id = point["id"]
        assert created.headers["location"] == f"/v1/points/{point_id}"
        assert point["version"] == 1

        read = client.get(f"{services.urls['registry']}/v1/points/{point_id}")
        assert read.status_code == 200 and read.json()["name_uk"] == POINT["name_uk"]

        found = eventually(lambda: find_in_search(client, services, point_id), "point appears in search")
        assert found["status"]["state"] == "unknown"
        assert 0 <= found["distance_m"] < 1000

        operator = services.token(["operator"], points=[point_id])
        report = eventually(
            lambda: (
                r
                if (
                    r := client.post(
                        f"{services.urls['status']}/v1/points/{point_id}/status",
                        json={"state": "open", "note": "генератор працює"},
                        headers=bearer(operator),
                    )
                ).status_code
                != 404
                else None
            ),
            "status learns of the point",
        )
        assert report.status_code == 201, report.text
        assert report.json()["state"] == "open" and report.json()["version"] == 1

        status = client.get(f"{services.urls['status']}/v1/points/{point_id}/status")
        assert status.status_code == 200 and status.json()["state"] == "open"

        eventually(
            lambda: (hit := find_in_search(client, services, point_id)) and hit["status"]["state"] == "open",
            "search shows the point open",
        )
        open_only = client.get(
            f"{services.urls['search']}/v1/search/nearest",
            params={"lat": 50.45, "lon": 30.52, "state": "open", "service": ["heat", "charging"]},
        )
        assert point_id in [item["id"] for item in open_only.json()["items"]]

    seen = await _eventually_async(lambda: observations(services, point_id), "notify records the event")
    assert len(seen) == 1 and seen[0]["state"] == "open"

    # Deliver the same event again under a new message id, past JetStream's de-duplication.
    nc = await nats.connect(services.infra.nats_url)
    try:
        js = nc.jetstream()
        original = await js.get_last_msg(
            STATUS.stream_name(services.namespace), STATUS.subject(services.namespace, point_id)
        )
        headers = dict(original.headers or {})
        headers["Nats-Msg-Id"] = f"redelivery-{uuid.uuid4()}"
        assert original.subject is not None and original.data is not None
        await js.publish(original.subject, original.data, headers=headers)
        stream = await js.stream_info(STATUS.stream_name(services.namespace))
        await _eventually_async(
            lambda: _consumer_caught_up(
                js, STATUS.stream_name(services.namespace), STATUS_CONSUMER, stream.state.last_seq
            ),
            "notify handles the repeat",
        )
    finally:
        await nc.close()
    seen = await observations(services, point_id)
    assert len(seen) == 1, "a repeated event must be recorded once"


async def _consumer_caught_up(js: Any, stream: str, consumer: str, last_seq: int) -> bool:
    info = await js.consumer_info(stream, consumer)
    return info.ack_floor.stream_seq >= last_seq and info.num_ack_pending == 0


async def _eventually_async(probe: Callable[[], Any], what: str) -> Any:
    import asyncio

    deadline = time.monotonic() + POLL_BOUND_S
    while time.monotonic() < deadline:
        result = await probe()
        if result:
            return result
        await asyncio.sleep(0.1)
    raise AssertionError(f"{what} did not happen within {POLL_BOUND_S:.0f}s")


def test_bad_input_gets_problem_json_and_changes_nothing(services: RunningStack) -> None:
    coordinator = services.token(["coordinator"], katotth=["UA80"])
    with httpx.Client(timeout=10, base_url=services.urls["registry"]) as client:
        bad = client.post("/v1/points", json={**POINT, "lat": 123, "katotth": "UA80"}, headers=bearer(coordinator))
        assert bad.status_code == 422
        assert bad.headers["content-type"].startswith("application/problem+json")
        body = bad.json()
        assert body["status"] == 422 and "lat" in body["detail"] and "katotth" in body["detail"]

        anonymous = client.post("/v1/points", json=POINT)
        assert anonymous.status_code == 401 and anonymous.headers["www-authenticate"].startswith("Bearer")
        assert anonymous.headers["content-type"].startswith("application/problem+json")

        forged = client.post(
            "/v1/points", json=POINT, headers=bearer(services.token(["coordinator"], katotth=["UA80"])[:-4] + "abcd")
        )
        assert forged.status_code == 401

        elsewhere = client.post(
            "/v1/points", json=POINT, headers=bearer(services.token(["coordinator"], katotth=["UA46"]))
        )
        assert elsewhere.status_code == 403
        assert "UA80" in elsewhere.json()["detail"]

        missing = client.get(f"/v1/points/{uuid.uuid4()}")
        assert missing.status_code == 404 and missing.headers["content-type"].startswith("application/problem+json")

    with httpx.Client(timeout=10, base_url=services.urls["search"]) as client:
        too_far = client.get("/v1/search/nearest", params={"lat": 50, "lon": 30, "radius_km": 10_000})
        assert too_far.status_code == 422
        too_many = client.get("/v1/search/nearest", params={"lat": 50, "lon": 30, "limit": 5000})
        assert too_many.status_code == 422


def test_operator_may_report_only_on_own_points(services: RunningStack) -> None:
    coordinator = services.token(["coordinator"], katotth=["UA80"])
    with httpx.Client(timeout=10) as client:
        point_id = client.post(
            f"{services.urls['registry']}/v1/points", json=POINT, headers=bearer(coordinator)
        ).json()["id"]
        stranger = services.token(["operator"], points=[str(uuid.uuid4())])

        def attempt() -> httpx.Response | None:
            r = client.post(
                f"{services.urls['status']}/v1/points/{point_id}/status",
                json={"state": "closed"},
                headers=bearer(stranger),
            )
            return None if r.status_code == 404 else r

        response = eventually(attempt, "status learns of the point")
        assert response.status_code == 403
        bad_state = client.post(
            f"{services.urls['status']}/v1/points/{point_id}/status",
            json={"state": "maybe"},
            headers=bearer(services.token(["operator"], points=[point_id])),
        )
        assert bad_state.status_code == 422


def test_every_service_answers_health_probes(services: RunningStack) -> None:
    with httpx.Client(timeout=10) as client:
        for url in services.urls.values():
            assert client.get(f"{url}/livez").json() == {"status": "alive"}
            assert client.get(f"{url}/readyz").status_code == 200
            assert client.get(f"{url}/openapi.json").status_code == 200


async def test_one_trace_from_report_to_event(services: RunningStack) -> None:
    """The operator's request, the outbox event and its consumers share the caller's trace id."""
    trace_id = uuid.uuid4().hex
    traceparent = f"00-{trace_id}-{uuid.uuid4().hex[:16]}-01"
    coordinator = services.token(["coordinator"], katotth=["UA80"])
    async with httpx.AsyncClient(timeout=10) as client:
        created = await client.post(f"{services.urls['registry']}/v1/points", json=POINT, headers=bearer(coordinator))
        point_id = created.json()["id"]

        async def report() -> httpx.Response | None:
            r = await client.post(
                f"{services.urls['status']}/v1/points/{point_id}/status",
                json={"state": "closed"},
                headers={**bearer(coordinator), "traceparent": traceparent},
            )
            return None if r.status_code == 404 else r

        response = await _eventually_async(report, "status learns of the point")
        assert response.status_code == 201

    nc = await nats.connect(services.infra.nats_url)
    try:
        js = nc.jetstream()

        async def published() -> Any:
            try:
                last = await js.get_last_msg(
                    STATUS.stream_name(services.namespace), STATUS.subject(services.namespace, point_id)
                )
            except nats.js.errors.NotFoundError:
                return None
            # Status may publish the point's first (unknown) status when it learns of it: wait for the report's.
            return last if json.loads(last.data)["version"] == response.json()["version"] else None

        message = await _eventually_async(published, "the report's status event is published")
    finally:
        await nc.close()
    assert message.headers["traceparent"].split("-")[1] == trace_id
    assert message.headers["ce-type"] == "ua.poi.status.changed.v1"
