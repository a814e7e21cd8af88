"""Readiness: required checks decide, reported ones only degrade, every check is bounded. Metrics: per app, by route."""

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import APIRouter, FastAPI, HTTPException
from fastapi.testclient import TestClient

from poi_shared import health
from poi_shared.app import build_app
from poi_shared.health import Readiness
from poi_shared.metrics import ServiceMetrics
from tests.prometheus import samples

router = APIRouter()


@router.get("/things/{thing_id}")
async def read_thing(thing_id: int) -> dict[str, int]:
    if thing_id == 0:
        raise HTTPException(404, "no thing 0")
    return {"id": thing_id}


@router.get("/bug")
async def bug() -> None:
    raise RuntimeError("boom")


async def hangs() -> None:
    await asyncio.Event().wait()


async def fails() -> None:
    raise ConnectionError("refused")


async def answers() -> None:
    return None


def make_app(readiness: Readiness | None = None, metrics_sources: dict | None = None) -> FastAPI:  # type: ignore[type-arg]
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if readiness is not None:
            app.state.readiness = readiness
        for name, source in (metrics_sources or {}).items():
            app.state.metrics.on_scrape(name, source)
        yield

    return build_app(service="test", title="t", description="d", lifespan=lifespan, routers=[router])


def test_a_hanging_required_check_is_cut_at_its_timeout_and_makes_503() -> None:
    assert health.CHECK_TIMEOUT_S < 1.0, "/readyz must answer within 1 s, under the probe timeout"
    app = make_app(Readiness(required={"postgresql": hangs}, reported={"nats": answers}))
    with TestClient(app) as client:
        ready = client.get("/readyz")
    assert ready.status_code == 503
    assert ready.headers["content-type"] == "application/problem+json"
    assert ready.headers["retry-after"].isdigit()
    assert ready.json()["checks"] == {
        "postgresql": f"failed: no answer within {health.CHECK_TIMEOUT_S}s",
        "nats": "ok",
    }


def test_a_failing_reported_check_degrades_but_stays_ready() -> None:
    async def lag() -> dict[str, int]:
        return {"pending": 3}

    app = make_app(
        Readiness(required={"postgresql": answers}, reported={"nats": hangs, "redis": fails}, facts={"lag": lag})
    )
    with TestClient(app) as client:
        ready = client.get("/readyz")
        alive = client.get("/livez")
    assert ready.status_code == 200
    body = ready.json()
    assert body["status"] == "degraded"
    assert body["degraded"] == ["nats", "redis"]
    assert body["checks"]["postgresql"] == "ok"
    assert body["checks"]["redis"] == "failed: ConnectionError refused"
    assert body["lag"] == {"pending": 3}
    assert alive.status_code == 200


def test_a_fact_that_cannot_be_read_is_reported_not_fatal() -> None:
    app = make_app(Readiness(required={"postgresql": answers}, facts={"consumers": fails}))
    with TestClient(app) as client:
        ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["consumers"] == "unavailable: ConnectionError refused"


def test_http_requests_are_counted_by_route_template_and_status_class() -> None:
    with TestClient(make_app(), raise_server_exceptions=False) as client:
        for thing_id in (1, 2, 3, 0):
            client.get(f"/things/{thing_id}")
        client.get("/bug")
        client.get("/nowhere/at/all")
        scrape = client.get("/metrics")
    assert scrape.status_code == 200 and scrape.headers["content-type"].startswith("text/plain")
    found = samples(scrape.text)
    route = "/things/{thing_id}"
    ok = (("method", "GET"), ("route", route), ("status_class", "2xx"))
    missing = (("method", "GET"), ("route", route), ("status_class", "4xx"))
    assert found[("poi_http_requests_total", ok)] == 3
    assert found[("poi_http_requests_total", missing)] == 1
    crashed = (("method", "GET"), ("route", "/bug"), ("status_class", "5xx"))
    assert found[("poi_http_requests_total", crashed)] == 1
    unmatched = (("method", "GET"), ("route", "unmatched"), ("status_class", "4xx"))
    assert found[("poi_http_requests_total", unmatched)] == 1
    assert found[("poi_http_request_duration_seconds_count", (("method", "GET"), ("route", route)))] == 4
    assert not any("/things/1" in str(labels) for _, labels in found), "raw paths must never become labels"


def test_each_app_has_its_own_registry() -> None:
    first, second = make_app(), make_app()
    with TestClient(first) as a, TestClient(second) as b:
        a.get("/things/1")
        found = samples(b.get("/metrics").text)
    labels = (("method", "GET"), ("route", "/things/{thing_id}"), ("status_class", "2xx"))
    assert ("poi_http_requests_total", labels) not in found


def test_a_source_that_hangs_or_fails_never_blocks_a_scrape() -> None:
    async def lag() -> None:
        app.state.metrics.gauge("poi_test_lag", "test").set(7)

    app = make_app(metrics_sources={"stuck": hangs, "broken": fails, "lag": lag})
    with TestClient(app) as client:
        scrape = client.get("/metrics")
    found = samples(scrape.text)
    assert found[("poi_metrics_source_up", (("source", "stuck"),))] == 0
    assert found[("poi_metrics_source_up", (("source", "broken"),))] == 0
    assert found[("poi_metrics_source_up", (("source", "lag"),))] == 1
    assert found[("poi_test_lag", ())] == 7


async def test_sources_are_read_at_most_once_per_cache_period() -> None:
    metrics = ServiceMetrics()
    reads: list[int] = []

    async def source() -> None:
        reads.append(1)

    metrics.on_scrape("counted", source)
    await metrics.render()
    await metrics.render()
    assert len(reads) == 1
