"""The status service's app factory, and its outbox relay run on its own."""

import asyncio
import signal
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from functools import partial
from pathlib import Path

import redis.asyncio as redis
from fastapi import FastAPI
from starlette.middleware import Middleware

from poi_shared import metrics
from poi_shared.app import build_app, nats_connection, postgres_pool, readiness_checks, supervised
from poi_shared.contracts import POINTS
from poi_shared.db import SHARED_MIGRATIONS
from poi_shared.telemetry import configure_logging
from poi_status import cache, events
from poi_status.areas import views as areas_views
from poi_status.feed import views as feed_views
from poi_status.feed.service import stopped_by_exit_signals
from poi_status.freshness.service import downgrade_stale
from poi_status.overview import views as overview_views
from poi_status.points.service import REFRESH_S, Directory
from poi_status.reports import views as reports_views
from poi_status.reports.service import ReportWriter, forget_idempotency_keys
from poi_status.settings import StatusSettings

SERVICE = "poi-status"
MIGRATIONS = [("shared", SHARED_MIGRATIONS), ("status", Path(__file__).parent / "migrations")]
IDEMPOTENCY_PRUNE_S = 600.0


def create_app(settings: StatusSettings | None = None) -> FastAPI:
    """Build the status app; connections open in the lifespan."""
    settings = settings or StatusSettings()
    configure_logging(SERVICE, settings.log_level)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            pool = await stack.enter_async_context(postgres_pool(settings))
            redis_client = redis.Redis.from_url(settings.redis_url, socket_timeout=2, socket_connect_timeout=2)
            stack.push_async_callback(redis_client.aclose)
            nc, js = await stack.enter_async_context(nats_connection(settings, service=SERVICE))
            supervisor = await stack.enter_async_context(supervised())
            directory = Directory()
            supervisor.every("directory", REFRESH_S, partial(directory.refresh, pool))
            if settings.relay_in_process:
                supervisor.relay_outbox(pool, js, settings)
            supervisor.consume(
                js,
                settings,
                stream=POINTS,
                durable=events.POINTS_CONSUMER,
                handler=partial(events.handle_point_event, pool),
            )
            supervisor.every(
                "stale-sweep",
                settings.stale_check_interval_s,
                partial(downgrade_stale, pool, redis_client, settings=settings),
            )
            supervisor.every(
                "cache-keeper",
                settings.cache_ttl_s / 2,
                partial(
                    cache.keep_filled, pool, redis_client, namespace=settings.namespace, ttl_s=settings.cache_ttl_s
                ),
            )
            supervisor.every(
                "idempotency-prune",
                IDEMPOTENCY_PRUNE_S,
                partial(forget_idempotency_keys, pool, older_than_s=settings.idempotency_retention_s),
            )
            # Feeds end before anything else: on the server's exit signal, or else when the app stops.
            feed_stop = asyncio.Event()
            stack.callback(feed_stop.set)
            stack.enter_context(stopped_by_exit_signals(feed_stop))
            broker = metrics.Broker(
                nc, js, settings.namespace, consumers=[metrics.Consumer(POINTS, events.POINTS_CONSUMER)]
            )
            app.state.settings, app.state.pool, app.state.redis = settings, pool, redis_client
            app.state.directory, app.state.jetstream, app.state.feed_stop = directory, js, feed_stop
            app.state.report_writer = ReportWriter(pool, redis_client, settings)
            app.state.readiness = readiness_checks(pool=pool, cache=redis_client, broker=broker)
            metrics.track_broker(app.state.metrics, broker)
            metrics.track_outbox(app.state.metrics, pool)
            yield

    app = build_app(
        service=SERVICE,
        title="Points of Invincibility — status",
        description="Live status reported by operators: open or full, with what, since when; blackout activation by "
        "area, coordinators' lists and statistics, and a live feed.",
        lifespan=lifespan,
        routers=[reports_views.router, feed_views.router, areas_views.router, overview_views.router],
    )
    # Innermost: a report's common case skips the router (see QuickReports).
    app.user_middleware.append(Middleware(reports_views.QuickReports))
    return app


async def run_relay(settings: StatusSettings) -> None:
    """Publish the outbox until SIGTERM or SIGINT: the relay as a process of its own (relay_in_process off)."""
    configure_logging(f"{SERVICE}-relay", settings.log_level)
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    async with (
        postgres_pool(settings) as pool,
        nats_connection(settings, service=f"{SERVICE}-relay") as (_, js),
        supervised() as supervisor,
    ):
        supervisor.relay_outbox(pool, js, settings)
        await stopping.wait()
