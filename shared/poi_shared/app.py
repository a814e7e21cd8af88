"""What every app factory needs: FastAPI with errors, health and tracing; supervised background work."""

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import redis.asyncio as redis
from fastapi import APIRouter, Depends, FastAPI
from fastapi.routing import APIRoute
from nats.aio.client import Client as NATS
from nats.js import JetStreamContext

from poi_shared import db, health, jetstream
from poi_shared.auth import TokenVerifier
from poi_shared.contracts import StreamSpec
from poi_shared.errors import install_error_handlers
from poi_shared.intake import BodySizeLimit, require_json_body
from poi_shared.models import MAX_BODY_BYTES
from poi_shared.openapi import CONTACT, LICENSE, SERVERS, install_openapi
from poi_shared.settings import AuthSettings, DatabaseServiceSettings, ServiceSettings
from poi_shared.telemetry import configure_tracing

log = logging.getLogger(__name__)


def build_app(*, service: str, title: str, description: str, lifespan: Any, routers: Sequence[APIRouter]) -> FastAPI:
    """A FastAPI app with problem+json errors, /livez and /readyz, token verification, tracing, a complete OpenAPI."""
    app = FastAPI(
        title=title,
        description=description,
        version="1.0.0",
        lifespan=lifespan,
        contact=CONTACT,
        license_info=LICENSE,
        servers=SERVERS,
        dependencies=[Depends(require_json_body)],  # runs before the body is validated
        generate_unique_id_function=_operation_id,
    )
    app.state.readiness = {}
    app.state.token_verifier = TokenVerifier(AuthSettings())
    install_error_handlers(app)
    install_openapi(app)
    app.add_middleware(BodySizeLimit, max_bytes=MAX_BODY_BYTES)
    app.include_router(health.router)
    for router in routers:
        app.include_router(router)
    configure_tracing(service, app)
    return app


def _operation_id(route: APIRoute) -> str:
    """The route function's name, e.g. register_point: what generated clients call the method."""
    return route.name


class Supervisor:
    """Runs background loops, restarting any that crash, until stopped."""

    def __init__(self) -> None:
        self.stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    def start(self, name: str, loop: Callable[[], Awaitable[None]]) -> None:
        """Run loop() in the background; restart it with backoff if it raises."""
        self._tasks.append(asyncio.create_task(self._supervise(name, loop), name=name))

    async def _supervise(self, name: str, loop: Callable[[], Awaitable[None]]) -> None:
        delay = 0.5
        while not self.stop.is_set():
            try:
                await loop()
                delay = 0.5
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("background task %s crashed; restarting in %.1fs", name, delay)
                try:
                    await asyncio.wait_for(self.stop.wait(), delay)
                except TimeoutError:
                    pass
                delay = min(delay * 2, 10.0)

    def consume(
        self, js: JetStreamContext, *, namespace: str, stream: StreamSpec, durable: str, handler: jetstream.Handler
    ) -> None:
        """Run a durable consumer of the stream until stopped."""
        self.start(
            durable,
            lambda: jetstream.run_consumer(
                js, namespace=namespace, stream=stream, durable=durable, handler=handler, stop=self.stop
            ),
        )

    async def close(self, timeout_s: float = 10.0) -> None:
        """Ask every loop to stop, wait for them, cancel stragglers."""
        self.stop.set()
        if not self._tasks:
            return
        _, pending = await asyncio.wait(self._tasks, timeout=timeout_s)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)


@asynccontextmanager
async def postgres_pool(settings: DatabaseServiceSettings) -> AsyncIterator[asyncpg.Pool]:
    """The service's database pool for the app's lifetime."""
    pool = await db.create_pool(
        settings.database_url, timeout_s=settings.startup_timeout_s, max_size=settings.db_pool_max
    )
    try:
        yield pool
    finally:
        await pool.close()


@asynccontextmanager
async def nats_connection(settings: ServiceSettings, *, service: str) -> AsyncIterator[tuple[NATS, JetStreamContext]]:
    """A NATS connection with the contract's streams provisioned; drained on the way out."""
    nc = await jetstream.connect(settings.nats_url, name=service, timeout_s=settings.startup_timeout_s)
    try:
        js = nc.jetstream()
        await jetstream.ensure_streams(js, settings.namespace)
        yield nc, js
    finally:
        await nc.drain()


@asynccontextmanager
async def supervised() -> AsyncIterator[Supervisor]:
    """Background loops that stop, in order, before the connections they use close."""
    supervisor = Supervisor()
    try:
        yield supervisor
    finally:
        await supervisor.close()


def readiness_checks(
    *, pool: asyncpg.Pool | None = None, nc: NATS | None = None, cache: redis.Redis | None = None
) -> dict[str, health.Check]:
    """Readiness checks for the dependencies a service holds."""
    checks: dict[str, health.Check] = {}
    if pool is not None:
        checks["postgresql"] = lambda: pool.fetchval("SELECT 1")
    if cache is not None:
        checks["redis"] = lambda: cache.ping()
    if nc is not None:
        checks["nats"] = lambda: jetstream.check_connected(nc)
    return checks
