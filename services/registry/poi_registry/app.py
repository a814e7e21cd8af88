"""The registry service's app factory."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI

from poi_registry.points import views as points_views
from poi_registry.settings import RegistrySettings
from poi_shared import db, jetstream, outbox
from poi_shared.app import Supervisor, build_app
from poi_shared.db import SHARED_MIGRATIONS
from poi_shared.telemetry import configure_logging

SERVICE = "poi-registry"
MIGRATIONS = [("shared", SHARED_MIGRATIONS), ("registry", Path(__file__).parent / "migrations")]


def create_app(settings: RegistrySettings | None = None) -> FastAPI:
    """Build the registry app; connections open in the lifespan."""
    settings = settings or RegistrySettings()
    configure_logging(SERVICE, settings.log_level)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        pool = await db.create_pool(
            settings.database_url, timeout_s=settings.startup_timeout_s, max_size=settings.db_pool_max
        )
        nc = await jetstream.connect(settings.nats_url, name=SERVICE, timeout_s=settings.startup_timeout_s)
        js = nc.jetstream()
        await jetstream.ensure_streams(js, settings.namespace)
        supervisor = Supervisor()
        supervisor.start("outbox-relay", lambda: outbox.run_relay(pool, js, stop=supervisor.stop))
        app.state.settings, app.state.pool = settings, pool
        app.state.readiness = {
            "postgresql": lambda: pool.fetchval("SELECT 1"),
            "nats": lambda: jetstream.check_connected(nc),
        }
        try:
            yield
        finally:
            await supervisor.close()
            await nc.drain()
            await pool.close()

    return build_app(
        service=SERVICE,
        title="Points of Invincibility — registry",
        description="The register of points: who runs them, where they are, what they offer.",
        lifespan=lifespan,
        routers=[points_views.router],
    )
