"""An exhausted database pool answers 503 with Retry-After through a real route, instead of waiting for ever."""

import asyncio
import logging
import secrets
import uuid
from collections.abc import Iterator

import asyncpg
import httpx
import pytest

from poi_cli import stack
from poi_registry.app import MIGRATIONS, create_app
from poi_registry.settings import RegistrySettings
from poi_shared import db


@pytest.fixture
def keep_logging() -> Iterator[None]:
    """The app factory sends logs to stderr as JSON; give pytest its handlers back afterwards."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


async def test_an_exhausted_pool_answers_503_with_retry_after(
    infra: stack.Infrastructure, namespace: str, keep_logging: None
) -> None:
    name = f"{namespace}_pool_{secrets.token_hex(3)}"
    await db.ensure_database(infra.database_url, name)
    url = db.database_url(infra.database_url, name)
    await db.migrate(url, MIGRATIONS)
    settings = RegistrySettings(
        database_url=url, nats_url=infra.nats_url, namespace=namespace, db_pool_max=2, db_acquire_timeout_s=0.2
    )
    app = create_app(settings)
    point = f"/v1/points/{uuid.uuid4()}"
    async with app.router.lifespan_context(app):
        pool: asyncpg.Pool = app.state.pool
        held = []
        try:
            while True:  # take every connection the relay left
                held.append(await pool.acquire(timeout=0.5))
        except TimeoutError:
            pass
        # Starlette re-raises what its error handler answered, for the server to log; here the answer is the point.
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://registry") as client:
            try:
                busy = await asyncio.wait_for(client.get(point), 30)
            finally:
                for conn in held:
                    await pool.release(conn)
            free = await asyncio.wait_for(client.get(point), 30)

    assert held
    assert busy.status_code == 503
    assert busy.headers["content-type"] == "application/problem+json"
    assert int(busy.headers["retry-after"]) > 0
    assert busy.json()["dependency"] == "postgresql"
    assert free.status_code == 404  # the same route answers again once connections are free
