"""The status service's app factory."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path

import redis.asyncio as redis
from fastapi import FastAPI

from poi_shared import db, jetstream, outbox
from poi_shared.app import Supervisor, build_app
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
        pool = await db.create_pool(
            settings.database_url, timeout_s=settings.startup_timeout_s, max_size=settings.db_pool_max
        )
        cache = redis.Redis.from_url(settings.redis_url, socket_timeout=2, socket_connect_timeout=2)
        nc = await jetstream.connect(settings.nats_url, name=SERVICE, timeout_s=settings.startup_timeout_s)
        js = nc.jetstream()
        await jetstream.ensure_streams(js, settings.namespace)
        supervisor = Supervisor()
        supervisor.start("outbox-relay", lambda: outbox.run_relay(pool, js, stop=supervisor.stop))
        supervisor.start(
            "points-consumer",
            lambda: jetstream.run_consumer(
                js,
                namespace=settings.namespace,
                stream=POINTS,
                durable=events.POINTS_CONSUMER,
                handler=partial(events.handle_point_event, pool),
                stop=supervisor.stop,
            ),
        )
        app.state.settings, app.state.pool, app.state.redis = settings, pool, cache
        app.state.readiness = {
            "postgresql": lambda: pool.fetchval("SELECT 1"),
            "redis": lambda: cache.ping(),
            "nats": lambda: jetstream.check_connected(nc),
        }
        try:
            yield
        finally:
            await supervisor.close()
            await nc.drain()
            await cache.aclose()
            await pool.close()

    return build_app(
        service=SERVICE,
        title="Points of Invincibility — status",
        description="Live status reported by operators: open or closed, and when it was last confirmed.",
        lifespan=lifespan,
        routers=[reports_views.router],
    )
