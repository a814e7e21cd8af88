"""Each service's app with its lifespan, on the session's real servers, and tokens it accepts.

One app per service per session, in a namespace of their own (so the end-to-end stack's searches and consumers
never see these points). Every response any route test receives is checked against the service's OpenAPI
document: its status must be documented for that operation, an error must be problem+json with its RFC 9110
title, and a success body must match the documented schema.
"""

import asyncio
import re
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import jsonschema
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import SecretStr

from poi_cli import stack
from poi_notify.app import create_app as create_notify
from poi_notify.settings import NotifySettings
from poi_registry.app import create_app as create_registry
from poi_registry.settings import RegistrySettings
from poi_search.app import create_app as create_search
from poi_search.settings import SearchSettings
from poi_shared.auth import TokenVerifier, issue_token
from poi_shared.errors import PROBLEM_JSON, Problem, reason
from poi_shared.settings import AuthSettings
from poi_status.app import create_app as create_status
from poi_status.settings import StatusSettings
from tests.conftest import drop_namespace

pytestmark = pytest.mark.integration
SECRET = "route-tests-secret-not-for-production-0123456789"
POLL_BOUND_S = 30.0  # generous so CI never flakes; nothing here measures time

POINT: dict[str, Any] = {
    "name_uk": "Пункт незламності — Ліцей №5",
    "name_en": "Invincibility Point — Lyceum No. 5",
    "category": "state",
    "host_type": "school",
    "lat": 50.4501,
    "lon": 30.5234,
    "katotth": "UA80000000000093317",
    "address_uk": "вул. Хрещатик, 1, Київ",
    "settlement": "Київ",
    "capacity": 120,
    "services": ["heat", "charging"],
    "visibility": "public",
}
"""A valid point in Kyiv (KATOTTH UA80…), for a coordinator of UA80."""

Bearer = Callable[..., dict[str, str]]


@pytest.fixture(scope="session")
def routes_namespace(infra: stack.Infrastructure, namespace: str) -> Iterator[str]:
    """The route tests' own namespace; its databases, streams and Redis keys are removed at the end."""
    ns = f"{namespace}r"
    yield ns
    asyncio.run(drop_namespace(infra, ns))


@pytest.fixture(scope="session")
def database_urls(infra: stack.Infrastructure, routes_namespace: str) -> dict[str, str]:
    """Each service's database, migrated, as `poi run` makes them."""
    return asyncio.run(stack.prepare_databases(infra.database_url, routes_namespace))


@pytest.fixture(scope="session")
def bearer() -> Bearer:
    """Authorization headers for a token the apps accept: bearer("coordinator", katotth=["UA80"])."""

    def headers(*roles: str, katotth: list[str] | None = None, points: list[str] | None = None) -> dict[str, str]:
        token = issue_token(SECRET, subject="route-tests", roles=list(roles), katotth=katotth, points=points)
        return {"Authorization": f"Bearer {token}"}

    return headers


def serve(app: FastAPI) -> Iterator[TestClient]:
    """Run the app with its lifespan; every response is checked against its OpenAPI document."""
    app.state.token_verifier = TokenVerifier(AuthSettings(secret=SecretStr(SECRET), issuer="poi-dev", audience="poi"))
    with TestClient(app, raise_server_exceptions=False) as client:
        client.event_hooks = {"request": [], "response": [conforms_to_openapi(app)]}
        yield client


@pytest.fixture(scope="session")
def registry_client(
    infra: stack.Infrastructure, routes_namespace: str, database_urls: dict[str, str]
) -> Iterator[TestClient]:
    """The registry app."""
    settings = RegistrySettings(
        database_url=database_urls["registry"], nats_url=infra.nats_url, namespace=routes_namespace
    )
    yield from serve(create_registry(settings))


@pytest.fixture(scope="session")
def status_client(
    infra: stack.Infrastructure, routes_namespace: str, database_urls: dict[str, str]
) -> Iterator[TestClient]:
    """The status app."""
    settings = StatusSettings(
        database_url=database_urls["status"],
        redis_url=infra.redis_url,
        nats_url=infra.nats_url,
        namespace=routes_namespace,
    )
    yield from serve(create_status(settings))


@pytest.fixture(scope="session")
def search_client(infra: stack.Infrastructure, routes_namespace: str) -> Iterator[TestClient]:
    """The search app."""
    yield from serve(create_search(SearchSettings(nats_url=infra.nats_url, namespace=routes_namespace)))


@pytest.fixture(scope="session")
def notify_client(
    infra: stack.Infrastructure, routes_namespace: str, database_urls: dict[str, str]
) -> Iterator[TestClient]:
    """The notify app."""
    yield from serve(create_notify(notify_settings(infra, routes_namespace, database_urls)))


GATEWAY_TOKEN = "test-gateway-token"


def notify_settings(
    infra: stack.Infrastructure, namespace: str, database_urls: dict[str, str], **changes: Any
) -> NotifySettings:
    """Notify as the route tests run it: the log sink for SMS, Kannel's callbacks with a test token, roomy limits."""
    defaults: dict[str, Any] = {
        "database_url": database_urls["notify"],
        "redis_url": infra.redis_url,
        "nats_url": infra.nats_url,
        "namespace": namespace,
        "phone_key": "test-phone-key",
        "gateway_token": GATEWAY_TOKEN,
        "subscribe_per_ip_per_hour": 100_000,
        "confirm_per_ip_per_hour": 100_000,
        "sms_idle_poll_s": 0.05,
    }
    return NotifySettings(**{**defaults, **changes})


def register_point(registry_client: TestClient, bearer: Bearer, **changes: Any) -> dict[str, Any]:
    """Register POINT with some fields changed, as an admin; returns the point as the registry answered."""
    response = registry_client.post("/v1/points", json={**POINT, **changes}, headers=bearer("admin"))
    assert response.status_code == 201, response.text
    return response.json()


def eventually(probe: Callable[[], Any], what: str) -> Any:
    """Poll until probe returns something truthy."""
    deadline = time.monotonic() + POLL_BOUND_S
    while time.monotonic() < deadline:
        if result := probe():
            return result
        time.sleep(0.05)
    raise AssertionError(f"{what} did not happen within {POLL_BOUND_S:.0f}s")


def known_to_status(status_client: TestClient, point_id: str) -> None:
    """Wait until status has the registry's event about the point."""
    eventually(lambda: status_client.get(f"/v1/points/{point_id}/status").status_code == 200, "status learns the point")


def assert_problem(response: httpx.Response, status: int, *, field: str | None = None) -> dict[str, Any]:
    """The response is the given problem; with field, a 422 whose errors name that location (e.g. body.lat)."""
    assert response.status_code == status, response.text
    body = response.json()
    if field is not None:
        locations = [e["location"] for e in body["errors"]]
        assert field in locations, f"{field} not among {locations}"
        assert field in body["detail"]
    return body


def random_point_id() -> str:
    """An id no point has."""
    return str(uuid.uuid4())


def conforms_to_openapi(app: FastAPI) -> Callable[[httpx.Response], None]:
    """A response hook failing the test when a response is not what the app's OpenAPI document promises."""
    document = app.openapi()
    operations = [
        (method.upper(), re.compile("^" + re.sub(r"\{[^/}]+\}", "[^/]+", path) + "$"), path, operation)
        for path, item in document["paths"].items()
        for method, operation in item.items()
    ]

    def check(response: httpx.Response) -> None:
        response.read()
        request = response.request
        match = next(((p, o) for m, rx, p, o in operations if m == request.method and rx.match(request.url.path)), None)
        if match is None:
            return  # not an operation of the document (e.g. /livez, an unknown path)
        path, operation = match
        status = response.status_code
        where = f"{request.method} {path} answered {status}"
        assert str(status) in operation["responses"], f"{where}, which its OpenAPI operation does not document"
        if status >= 400:
            assert response.headers["content-type"] == PROBLEM_JSON, f"{where} as {response.headers['content-type']}"
            problem = Problem.model_validate(response.json())
            assert problem.status == status and problem.title == reason(status), f"{where} with {problem}"
            return
        media = operation["responses"][str(status)].get("content", {}).get("application/json")
        if media is not None:
            schema = {**media["schema"], "components": document["components"]}
            jsonschema.validate(response.json(), schema, cls=jsonschema.Draft202012Validator)

    return check
