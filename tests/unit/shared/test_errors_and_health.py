"""Every error is problem+json; readiness fails with 503 and Retry-After; liveness never looks at dependencies."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
from fastapi import APIRouter, FastAPI, HTTPException
from fastapi.testclient import TestClient
from pydantic import BaseModel, Field

from poi_shared.app import build_app
from poi_shared.errors import invalid, reason
from poi_shared.health import Readiness
from poi_shared.models import MAX_BODY_BYTES

router = APIRouter()


class Payload(BaseModel):
    capacity: int = Field(ge=1)


@router.post("/things")
async def create_thing(payload: Payload) -> dict[str, int]:
    return {"capacity": payload.capacity}


@router.get("/limited")
async def limited(limit: int) -> None:
    raise invalid(("query", "limit"), "must be at most 50", "less_than_equal")


@router.get("/refused")
async def refused() -> None:
    raise HTTPException(422, "refused by the route itself")


@router.get("/missing")
async def missing() -> None:
    raise HTTPException(404, "no such thing")


@router.get("/db-down")
async def db_down() -> None:
    raise asyncpg.CannotConnectNowError("the database system is starting up")


@router.get("/bug")
async def bug() -> None:
    raise RuntimeError("secret internals")


def make_app(ready: bool) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async def database() -> None:
            if not ready:
                raise ConnectionError("refused")

        async def catalog() -> str | None:
            return None if ready else "catching up"

        app.state.readiness = Readiness(required={"postgresql": database, "catalog": catalog})
        yield

    return build_app(service="test", title="t", description="d", lifespan=lifespan, routers=[router])


def test_validation_error_is_problem_json() -> None:
    with TestClient(make_app(True)) as client:
        response = client.post("/things", json={"capacity": 0})
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["status"] == 422 and body["errors"][0]["location"] == "body.capacity"
    assert "body.capacity" in body["detail"]


def test_http_errors_are_problem_json() -> None:
    with TestClient(make_app(True)) as client:
        response = client.get("/missing")
        not_routed = client.get("/nowhere")
    assert response.status_code == 404 and response.json()["detail"] == "no such thing"
    assert response.headers["content-type"] == "application/problem+json"
    assert not_routed.status_code == 404 and not_routed.headers["content-type"] == "application/problem+json"


def test_dependency_down_is_503_with_retry_after() -> None:
    with TestClient(make_app(True), raise_server_exceptions=False) as client:
        response = client.get("/db-down")
    assert response.status_code == 503
    assert response.headers["retry-after"].isdigit()
    assert response.json()["dependency"] == "postgresql"


def test_unexpected_error_hides_internals() -> None:
    with TestClient(make_app(True), raise_server_exceptions=False) as client:
        response = client.get("/bug")
    assert response.status_code == 500
    assert "secret internals" not in response.text
    assert response.headers["content-type"] == "application/problem+json"


def test_readiness_reports_each_failing_dependency() -> None:
    with TestClient(make_app(False)) as client:
        ready = client.get("/readyz")
        alive = client.get("/livez")
    assert ready.status_code == 503 and ready.headers["retry-after"].isdigit()
    assert ready.json()["checks"] == {"postgresql": "failed: ConnectionError refused", "catalog": "catching up"}
    assert alive.status_code == 200


def test_ready_when_every_check_passes() -> None:
    with TestClient(make_app(True)) as client:
        assert client.get("/readyz").json() == {
            "status": "ready",
            "checks": {"postgresql": "ok", "catalog": "ok"},
            "degraded": [],
        }


def test_problem_titles_are_rfc_9110_reason_phrases_everywhere() -> None:
    with TestClient(make_app(True)) as client:
        by_model = client.post("/things", json={"capacity": 0})
        by_route = client.get("/limited", params={"limit": 51})
        by_exception = client.get("/refused")
        too_large = client.post(
            "/things", content=b"1" * (MAX_BODY_BYTES + 1), headers={"content-type": "application/json"}
        )
    assert {by_model.json()["title"], by_route.json()["title"], by_exception.json()["title"]} == {
        "Unprocessable Content"
    }
    assert by_route.json()["errors"] == [
        {"location": "query.limit", "message": "must be at most 50", "type": "less_than_equal"}
    ]
    assert too_large.status_code == 413 and too_large.json()["title"] == "Content Too Large"
    assert too_large.headers["content-type"] == "application/problem+json"
    assert (reason(415), reason(404), reason(503)) == ("Unsupported Media Type", "Not Found", "Service Unavailable")


def test_a_body_that_is_not_json_is_415() -> None:
    with TestClient(make_app(True)) as client:
        form = client.post("/things", data={"capacity": "1"})
        broken = client.post("/things", content=b"{", headers={"content-type": "application/json"})
        merge_patch = client.post(
            "/things", content=b'{"capacity": 2}', headers={"content-type": "application/merge-patch+json"}
        )
    assert form.status_code == 415 and "application/x-www-form-urlencoded" in form.json()["detail"]
    assert form.headers["content-type"] == "application/problem+json"
    assert broken.status_code == 422 and broken.json()["errors"][0]["location"] == "body"
    assert merge_patch.status_code == 200
