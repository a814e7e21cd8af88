"""Integrators: keys an admin issues and revokes, rate limits per IP and per key in Redis, and Redis outages."""

import asyncio
import logging
import time
from typing import Any

import httpx
import pytest
import redis.asyncio as redis
from fastapi.testclient import TestClient

from poi_cli import stack
from poi_search.app import create_app as create_search
from poi_search.settings import SearchSettings
from tests.conftest import drop_namespace
from tests.integration.inprocess import eventually, serving
from tests.integration.routes.conftest import POLL_BOUND_S, Bearer, assert_problem
from tests.integration.search.conftest import WINDOW_S, area, away_from_window_end, search_settings
from tests.support.tcp_proxy import TcpProxy

pytestmark = pytest.mark.integration
NEAR = area(16).near()


def issue(search: TestClient, bearer: Bearer, **body: Any) -> dict[str, Any]:
    response = search.post("/v1/keys", json={"name": "Дія", **body}, headers=bearer("admin"))
    assert response.status_code == 201, response.text
    return response.json()


def until(probe: Any, what: str) -> Any:
    deadline = time.monotonic() + POLL_BOUND_S
    while not (result := probe()):
        assert time.monotonic() < deadline, f"{what} did not happen in time"
        time.sleep(0.05)
    return result


def test_an_admin_issues_lists_and_revokes_keys_stored_only_as_hashes(search: TestClient, bearer: Bearer) -> None:
    issued = issue(search, bearer, rate_limit=1000)
    key = issued["key"]
    assert key.startswith(f"poik_{issued['id']}_") and issued["rate_limit"] == 1000
    listed = search.get("/v1/keys", headers=bearer("admin")).json()["items"]
    mine = next(k for k in listed if k["id"] == issued["id"])
    assert "key" not in mine and key not in str(listed) and mine["revoked_at"] is None
    stored = until(lambda: search.app.state.key_ring.find(key), "every replica knows the key")  # type: ignore[attr-defined]
    assert key not in stored.model_dump_json() and stored.key_sha256 != key

    def with_key(status: int) -> httpx.Response | None:
        response = search.get("/v1/search/nearest", params=NEAR, headers={"X-API-Key": key})
        return response if response.status_code == status else None

    used = until(lambda: with_key(200), "the new key works")
    assert used.headers["ratelimit-policy"] == f'"integrator";q=1000;w={WINDOW_S}'
    assert search.delete(f"/v1/keys/{issued['id']}", headers=bearer("admin")).status_code == 204
    assert_problem(until(lambda: with_key(401), "the revoked key is refused"), 401)
    assert search.get("/v1/keys", headers=bearer("admin")).json()["items"][-1]["revoked_by"] == "route-tests"


def test_keys_are_an_admins_business(search: TestClient, bearer: Bearer) -> None:
    assert_problem(search.post("/v1/keys", json={"name": "Дія"}, headers=bearer("coordinator", katotth=["UA80"])), 403)
    assert_problem(search.get("/v1/keys"), 401)
    assert_problem(search.delete("/v1/keys/0123456789ab", headers=bearer("admin")), 404)
    assert_problem(
        search.post("/v1/keys", json={"name": "Дія", "rate_limit": 0}, headers=bearer("admin")),
        422,
        field="body.rate_limit",
    )
    for bad in ("poik_0123456789ab_" + "x" * 43, "nonsense"):
        assert_problem(search.get("/v1/search/nearest", params=NEAR, headers={"X-API-Key": bad}), 401)


def test_past_its_limit_a_key_gets_429_with_retry_after(search: TestClient, bearer: Bearer) -> None:
    away_from_window_end()
    key = issue(search, bearer, rate_limit=3)["key"]
    until(lambda: search.get("/v1/ogc/conformance", headers={"X-API-Key": key}).status_code == 200, "key known")
    answers = [search.get("/v1/search/nearest", params=NEAR, headers={"X-API-Key": key}) for _ in range(3)]
    assert [a.status_code for a in answers] == [200, 200, 429]
    assert answers[1].headers["ratelimit"].startswith('"integrator";r=0;t=')
    refused = assert_problem(answers[2], 429)
    assert f"requests in {WINDOW_S} s" in refused["detail"]
    assert 1 <= int(answers[2].headers["retry-after"]) <= WINDOW_S
    assert answers[2].headers["ratelimit-policy"] == f'"integrator";q=3;w={WINDOW_S}'
    anonymous = search.get("/v1/search/nearest", params=NEAR)
    assert anonymous.status_code == 200 and anonymous.headers["ratelimit-policy"].startswith('"ip";q=')


def test_a_token_with_the_integrator_role_gets_the_integrator_limit(search: TestClient, bearer: Bearer) -> None:
    answer = search.get("/v1/search/nearest", params=NEAR, headers=bearer("integrator"))
    quota = SearchSettings.model_fields["rate_limit_integrator"].default
    assert answer.status_code == 200 and answer.headers["ratelimit-policy"] == f'"integrator";q={quota};w={WINDOW_S}'
    assert_problem(search.get("/v1/search/nearest", params=NEAR, headers={"Authorization": "Bearer nope"}), 401)


async def test_limits_hold_per_replica_while_redis_is_down_and_are_shared_again_after(
    infra: stack.Infrastructure, search_namespace: str, caplog: pytest.LogCaptureFixture
) -> None:
    namespace = f"{search_namespace}x"
    async with TcpProxy.to(infra.redis_url) as proxy:
        settings = search_settings(
            infra, namespace, redis_url=proxy.through(infra.redis_url), rate_limit_ip=4, startup_timeout_s=10
        )
        app = create_search(settings)
        logging.getLogger().addHandler(caplog.handler)  # the app's logging setup replaced the root's handlers
        async with serving(app) as client:
            await eventually(lambda: _ready(client), "the replica catches up")
            away_from_window_end()
            assert (await client.get("/v1/ogc/conformance")).status_code == 200
            await eventually(lambda: _counted_in_redis(infra.redis_url, namespace, 1), "the count reaches Redis")
            caplog.clear()
            await proxy.cut()
            with caplog.at_level(logging.WARNING, logger="poi_search.clients"):
                statuses = [(await client.get("/v1/ogc/conformance")).status_code for _ in range(4)]
                await asyncio.sleep(0.5)  # many syncs fail meanwhile
            assert statuses == [200, 200, 200, 429], "the replica goes on counting by itself"
            outage_logs = [r for r in caplog.records if "per replica" in r.getMessage()]
            assert len(outage_logs) == 1, "an outage is logged once, not per request or per sync"
            assert "poi_search_rate_limits_shared 0.0" in (await client.get("/metrics")).text
            await proxy.restore()
            await eventually(lambda: _counted_in_redis(infra.redis_url, namespace, 4), "the counts reach Redis again")
            assert any("again" in r.getMessage() for r in caplog.records)
            assert "poi_search_rate_limits_shared 1.0" in (await client.get("/metrics")).text
    await drop_namespace(infra, namespace)
    cache = redis.Redis.from_url(infra.redis_url)
    try:
        async for key in cache.scan_iter(f"{namespace}:*"):
            await cache.delete(key)
    finally:
        await cache.aclose()


async def _ready(client: httpx.AsyncClient) -> bool:
    return (await client.get("/readyz")).status_code == 200


async def _counted_in_redis(url: str, namespace: str, at_least: int) -> bool:
    cache = redis.Redis.from_url(url)
    try:
        counts = [int(await cache.get(key) or 0) async for key in cache.scan_iter(f"{namespace}:ratelimit:*")]
    finally:
        await cache.aclose()
    return sum(counts) >= at_least
