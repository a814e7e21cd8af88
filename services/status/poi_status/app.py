"""The status service's app factory."""

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from functools import partial
from pathlib import Path

import redis.asyncio as redis
from fastapi import FastAPI

from poi_shared import metrics
from poi_shared.app import build_app, nats_connection, postgres_pool, readiness_checks, supervised
from poi_shared.contracts import POINTS
from poi_shared.db import SHARED_MIGRATIONS
from poi_shared.telemetry import configure_logging
from poi_status import events
from poi_status.reports import views as reports_views
from poi_status.settings import StatusSettings

SERVICE = "poi-status"
MIGRATIONS = [("shared", SHARED_MIGRATIONS), ("status", Path(__file__).parent / "migrations")]


def create_app(settings: StatusSettings | None = None) -> FastAPI:
    """Build the status app; connections open in the lifespan."""
    settings = settings or StatusSettings()
    configure_logging(SERVICE, settings.log_level)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            pool = await stack.enter_async_context(postgres_pool(settings))
            cache = redis.Redis.from_url(settings.redis_url, socket_timeout=2, socket_connect_timeout=2)
            stack.push_async_callback(cache.aclose)
            nc, js = await stack.enter_async_context(nats_connection(settings, service=SERVICE))
            supervisor = await stack.enter_async_context(supervised())
            supervisor.relay_outbox(pool, js, settings)
            supervisor.consume(
                js,
                settings,
                stream=POINTS,
                durable=events.POINTS_CONSUMER,
                handler=partial(events.handle_point_event, pool),
            )
            broker = metrics.Broker(
                nc, js, settings.namespace, consumers=[metrics.Consumer(POINTS, events.POINTS_CONSUMER)]
            )
            app.state.settings, app.state.pool, app.state.redis = settings, pool, cache
            app.state.readiness = readiness_checks(pool=pool, cache=cache, broker=broker)
            metrics.track_broker(app.state.metrics, broker)
            metrics.track_outbox(app.state.metrics, pool)
            yield

    return build_app(
        service=SERVICE,
        title="Points of Invincibility — status",
        description="Live status reported by operators: open or closed, and when it was last confirmed.",
        lifespan=lifespan,
        routers=[reports_views.router],
    )
