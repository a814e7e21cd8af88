"""The registry service's app factory."""

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path

from fastapi import FastAPI

from poi_registry.points import views as points_views
from poi_registry.settings import RegistrySettings
from poi_shared import metrics
from poi_shared.app import build_app, nats_connection, postgres_pool, readiness_checks, supervised
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
        async with AsyncExitStack() as stack:
            pool = await stack.enter_async_context(postgres_pool(settings))
            nc, js = await stack.enter_async_context(nats_connection(settings, service=SERVICE))
            supervisor = await stack.enter_async_context(supervised())
            supervisor.relay_outbox(pool, js, settings)
            broker = metrics.Broker(nc, js, settings.namespace)
            app.state.settings, app.state.pool = settings, pool
            app.state.readiness = readiness_checks(pool=pool, broker=broker)
            metrics.track_broker(app.state.metrics, broker)
            metrics.track_outbox(app.state.metrics, pool)
            yield

    return build_app(
        service=SERVICE,
        title="Points of Invincibility — registry",
        description="The register of points: who runs them, where they are, what they offer.",
        lifespan=lifespan,
        routers=[points_views.router],
    )
