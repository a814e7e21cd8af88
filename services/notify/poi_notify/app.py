"""The notify service's app factory."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path

from fastapi import FastAPI

from poi_notify import events
from poi_notify.observations import views as observations_views
from poi_notify.settings import NotifySettings
from poi_shared import db, jetstream
from poi_shared.app import Supervisor, build_app
from poi_shared.contracts import STATUS
from poi_shared.db import SHARED_MIGRATIONS
from poi_shared.telemetry import configure_logging

SERVICE = "poi-notify"
MIGRATIONS = [("shared", SHARED_MIGRATIONS), ("notify", Path(__file__).parent / "migrations")]


def create_app(settings: NotifySettings | None = None) -> FastAPI:
    """Build the notify app; connections open in the lifespan."""
    settings = settings or NotifySettings()
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
        supervisor.start(
            "status-consumer",
            lambda: jetstream.run_consumer(
                js,
                namespace=settings.namespace,
                stream=STATUS,
                durable=events.STATUS_CONSUMER,
                handler=partial(events.handle_status_event, pool),
                stop=supervisor.stop,
            ),
        )
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
        title="Points of Invincibility — notify",
        description="SMS subscriptions and alerts, webhooks. For now: records every status event once.",
        lifespan=lifespan,
        routers=[observations_views.router],
    )
