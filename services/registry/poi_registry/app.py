"""The registry service's app factory."""

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path

import asyncpg
from fastapi import FastAPI

from poi_registry.bulk import views as bulk_views
from poi_registry.oblasts import service as oblasts_service
from poi_registry.oblasts import views as oblasts_views
from poi_registry.points import service as points_service
from poi_registry.points import views as points_views
from poi_registry.settings import RegistrySettings
from poi_shared import metrics
from poi_shared.app import build_app, nats_connection, postgres_pool, readiness_checks, supervised
from poi_shared.db import SHARED_MIGRATIONS
from poi_shared.telemetry import configure_logging

SERVICE = "poi-registry"
MIGRATIONS = [("shared", SHARED_MIGRATIONS), ("registry", Path(__file__).parent / "migrations")]
IMPORT_PATH = "/v1/points/import"
PRUNE_EVERY_S = 3600.0
log = logging.getLogger(__name__)


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
            supervisor.start("housekeeping", lambda: housekeeping(pool, settings, stop=supervisor.stop))
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
        routers=[bulk_views.router, oblasts_views.router, points_views.router],
        body_limits={IMPORT_PATH: settings.import_max_bytes},
    )


async def housekeeping(pool: asyncpg.Pool, settings: RegistrySettings, *, stop: asyncio.Event) -> None:
    """Finish oblast policy changes cut short, then prune expired idempotency keys every hour until stopped."""
    await oblasts_service.apply_pending_policies(
        pool, namespace=settings.namespace, batch_size=settings.policy_batch_size
    )
    while not stop.is_set():
        pruned = await points_service.prune_idempotency_keys(pool, ttl_s=settings.idempotency_ttl_s)
        if pruned:
            log.info("pruned %d expired idempotency keys", pruned)
        try:
            await asyncio.wait_for(stop.wait(), PRUNE_EVERY_S)
        except TimeoutError:
            pass
