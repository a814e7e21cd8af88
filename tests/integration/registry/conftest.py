"""The registry app in a namespace of its own (so lists, exports and events hold only these tests' points).

Responses are checked against the OpenAPI document as in the route tests; helpers read the registry's database
and the events it published on NATS.
"""

import asyncio
import itertools
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import asyncpg
import nats
import pytest
from fastapi.testclient import TestClient
from nats.js import api

from poi_cli import stack
from poi_registry.app import MIGRATIONS, create_app
from poi_registry.settings import RegistrySettings
from poi_shared import db
from poi_shared.auth import issue_token
from poi_shared.contracts import POINTS
from tests.conftest import drop_namespace
from tests.integration.routes.conftest import POINT, SECRET, eventually, serve

pytestmark = pytest.mark.integration
Bearer = Callable[..., dict[str, str]]
_SERIAL = itertools.count(1)


@pytest.fixture(scope="session")
def registry_namespace(infra: stack.Infrastructure, namespace: str) -> Iterator[str]:
    """The registry tests' own namespace, removed at the end."""
    ns = f"{namespace}g"
    yield ns
    asyncio.run(drop_namespace(infra, ns))


@pytest.fixture(scope="session")
def registry_url(infra: stack.Infrastructure, registry_namespace: str) -> str:
    """The registry's database, migrated."""

    async def prepare() -> str:
        name = f"{registry_namespace}_registry"
        await db.ensure_database(infra.database_url, name)
        url = db.database_url(infra.database_url, name)
        await db.migrate(url, MIGRATIONS)
        return url

    return asyncio.run(prepare())


@pytest.fixture(scope="session")
def settings(infra: stack.Infrastructure, registry_namespace: str, registry_url: str) -> RegistrySettings:
    """The app's settings: small import limits, so the limits are cheap to reach."""
    return RegistrySettings(
        database_url=registry_url,
        nats_url=infra.nats_url,
        namespace=registry_namespace,
        import_max_rows=2_000,
        import_max_bytes=2 * 1024 * 1024,
        policy_batch_size=3,
    )


@pytest.fixture(scope="session")
def registry(settings: RegistrySettings) -> Iterator[TestClient]:
    """The registry app with its lifespan (outbox relay included)."""
    yield from serve(create_app(settings))


@pytest.fixture(scope="session")
def bearer() -> Bearer:
    """Authorization headers: bearer("coordinator", katotth=["UA80"], subject="alice")."""

    def headers(
        *roles: str, katotth: list[str] | None = None, points: list[str] | None = None, subject: str = "tester"
    ) -> dict[str, str]:
        token = issue_token(SECRET, subject=subject, roles=list(roles), katotth=katotth, points=points)
        return {"Authorization": f"Bearer {token}"}

    return headers


def unique_katotth(oblast: str = "80") -> str:
    """A KATOTTH code whose hromada (its first 9 characters) no other test uses, in Kyiv city by default."""
    return f"UA{oblast}{next(_SERIAL):05d}{uuid.uuid4().int % 10**10:010d}"


def new_point(registry: TestClient, bearer: Bearer, **changes: Any) -> dict[str, Any]:
    """Register POINT (with its own KATOTTH code unless given) as an admin; the private view."""
    body = {**POINT, "katotth": unique_katotth(), **changes}
    response = registry.post("/v1/points", json=body, headers=bearer("admin"))
    assert response.status_code == 201, response.text
    return response.json()


def sql(url: str, query: str, *args: Any) -> list[asyncpg.Record]:
    """Run one statement on the registry's database."""

    async def run() -> list[asyncpg.Record]:
        conn = await asyncpg.connect(url)
        try:
            return await conn.fetch(query, *args)
        finally:
            await conn.close()

    return asyncio.run(run())


def published(registry_url: str) -> None:
    """Wait until the relay has published every event the registry wrote."""
    eventually(lambda: sql(registry_url, "SELECT count(*) AS n FROM outbox")[0]["n"] == 0, "the outbox drains")


def point_events(infra: stack.Infrastructure, namespace: str, point_id: str) -> list[tuple[str, dict[str, Any]]]:
    """Every event on the point's subject, in order: (type, data)."""
    import json

    async def read() -> list[tuple[str, dict[str, Any]]]:
        nc = await nats.connect(infra.nats_url)
        try:
            js = nc.jetstream()
            subject = POINTS.subject(namespace, point_id)
            try:
                await js.get_last_msg(POINTS.stream_name(namespace), subject)
            except nats.js.errors.NotFoundError:
                return []
            sub = await js.subscribe(subject, ordered_consumer=True, deliver_policy=api.DeliverPolicy.ALL)
            found = []
            while True:
                msg = await sub.next_msg(timeout=10)
                found.append(((msg.headers or {})["ce-type"], json.loads(msg.data)))
                if msg.metadata.num_pending == 0:
                    break
            await sub.unsubscribe()
            return found
        finally:
            await nc.close()

    return asyncio.run(read())
