"""The notify service's app factory."""

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from functools import partial
from pathlib import Path

from fastapi import FastAPI

from poi_notify import events
from poi_notify.observations import views as observations_views
from poi_notify.settings import NotifySettings
from poi_shared import metrics
from poi_shared.app import build_app, nats_connection, postgres_pool, readiness_checks, supervised
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
        if settings.phone_key is None:
            raise RuntimeError("POI_NOTIFY_PHONE_KEY is not set: notify needs it to name phone numbers by their hash")
        async with AsyncExitStack() as stack:
            pool = await stack.enter_async_context(postgres_pool(settings))
            nc, js = await stack.enter_async_context(nats_connection(settings, service=SERVICE))
            supervisor = await stack.enter_async_context(supervised())
            supervisor.consume(
                js,
                settings,
                stream=STATUS,
                durable=events.STATUS_CONSUMER,
                handler=partial(events.handle_status_event, pool),
            )
            supervisor.prune_inbox(pool, settings, consumer=events.STATUS_CONSUMER)
            broker = metrics.Broker(
                nc, js, settings.namespace, consumers=[metrics.Consumer(STATUS, events.STATUS_CONSUMER)]
            )
            app.state.settings, app.state.pool = settings, pool
            app.state.readiness = readiness_checks(pool=pool, broker=broker)
            metrics.track_broker(app.state.metrics, broker)
            yield

    return build_app(
        service=SERVICE,
        title="Points of Invincibility — notify",
        description="SMS subscriptions and alerts, webhooks. For now: records every status event once.",
        lifespan=lifespan,
        routers=[observations_views.router],
    )
