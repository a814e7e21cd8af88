"""Every error is problem+json; readiness fails with 503 and Retry-After; liveness never looks at dependencies."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
from fastapi import APIRouter, FastAPI, HTTPException
from fastapi.testclient import TestClient
from pydantic import BaseModel, Field

from poi_shared.app import build_app

router = APIRouter()


class Payload(BaseModel):
    capacity: int = Field(ge=1)


@router.post("/things")
async def create_thing(payload: Payload) -> dict[str, int]:
    return {"capacity": payload.capacity}


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

        app.state.readiness = {"postgresql": database, "catalog": catalog}
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
        assert client.get("/readyz").json() == {"status": "ready", "checks": {"postgresql": "ok", "catalog": "ok"}}
