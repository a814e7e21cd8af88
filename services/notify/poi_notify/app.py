"""The notify service's app factory."""

import asyncio
import gc
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from functools import partial
from pathlib import Path

import asyncpg
import httpx
import redis.asyncio as redis
from fastapi import FastAPI
from nats.js import JetStreamContext

from poi_notify import data, events, privacy
from poi_notify.alerts import areas
from poi_notify.alerts import service as alerts
from poi_notify.alerts.areas import AreaIndex
from poi_notify.contacts import views as contacts_views
from poi_notify.observations import views as observations_views
from poi_notify.settings import NotifySettings
from poi_notify.sms import reports, sender
from poi_notify.sms import views as sms_views
from poi_notify.sms.providers import provider_from
from poi_notify.subscriptions import views as subscriptions_views
from poi_notify.webhooks import delivery as webhook_delivery
from poi_notify.webhooks import views as webhooks_views
from poi_shared import metrics
from poi_shared.app import Supervisor, build_app, nats_connection, postgres_pool, readiness_checks, supervised
from poi_shared.contracts import POINTS, STATUS
from poi_shared.db import SHARED_MIGRATIONS
from poi_shared.telemetry import configure_logging

SERVICE = "poi-notify"
MIGRATIONS = [("shared", SHARED_MIGRATIONS), ("notify", Path(__file__).parent / "migrations")]
SUBSCRIPTIONS_EXPIRE_S = 600.0


# Python's default (700, 10, 10) collects the youngest objects every 700 allocations.
GC_THRESHOLDS = (50_000, 20, 20)


def collect_garbage_less_often() -> None:
    """Let the objects of one flush batch die young instead of reaching the oldest generation (a process setting)."""
    # A flush batch keeps lists of its windows (thousands) alive while the database writes them. Collected every 700
    # allocations, they survive into the oldest generation, whose collections then come every few batches and walk
    # every object the process keeps (640,000 at the end of the bench's minute, half of them caches of texts): 36
    # collections of about 200 ms in that minute, each a stall of the event loop; none with these thresholds.
    gc.set_threshold(*GC_THRESHOLDS)


def sms_counters(app: FastAPI) -> sender.SmsCounters:
    """The sender's Prometheus counters, by gateway (kannel, log)."""
    registry = app.state.metrics
    return sender.SmsCounters(
        sent=registry.counter("poi_sms_sent", "SMS the gateway accepted.", ["provider"]),
        failed=registry.counter("poi_sms_failed", "SMS the gateway refused for good.", ["provider"]),
        throttled=registry.counter(
            "poi_sms_throttled", "SMS queued again because the gateway was busy or unreachable.", ["provider"]
        ),
    )


def create_app(settings: NotifySettings | None = None) -> FastAPI:
    """Build the notify app; connections open in the lifespan."""
    settings = settings or NotifySettings()
    configure_logging(SERVICE, settings.log_level)
    privacy.keep_numbers_out_of_access_logs()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if settings.phone_key is None:
            raise RuntimeError("POI_NOTIFY_PHONE_KEY is not set: notify needs it to name phone numbers by their hash")
        collect_garbage_less_often()
        async with AsyncExitStack() as stack:
            pool = await stack.enter_async_context(postgres_pool(settings))
            redis_client = redis.Redis.from_url(settings.redis_url, socket_timeout=2, socket_connect_timeout=2)
            stack.push_async_callback(redis_client.aclose)
            nc, js = await stack.enter_async_context(nats_connection(settings, service=SERVICE))
            # --- SMS: the gateway (closed after the sender stops), the sender and its housekeeping ---
            provider = provider_from(settings)
            stack.push_async_callback(provider.aclose)
            supervisor = await stack.enter_async_context(supervised())
            counters = sms_counters(app)
            for counter in (counters.sent, counters.failed, counters.throttled):
                counter.labels(provider.name)  # each series exists from the start at 0, so rate() and alerts see it
            supervisor.start(
                "sms-sender",
                partial(sender.run_sender, pool, provider, settings, counters=counters, stop=supervisor.stop),
            )
            # Delivery reports: the route takes them into this buffer, the writer empties it (and once more on stop).
            dlr_buffer = app.state.dlr_buffer = reports.ReportBuffer(limit=settings.sms_dlr_buffer_max)
            supervisor.start(
                "sms-dlr-writer",
                partial(
                    reports.run_writer,
                    pool,
                    dlr_buffer,
                    interval_s=settings.sms_dlr_flush_s,
                    hold_s=settings.sms_dlr_hold_s,
                    stop=supervisor.stop,
                ),
            )
            supervisor.every(
                "sms-abandon-stale", settings.sms_sending_lease_s / 5, partial(sender.abandon_stale, pool, settings)
            )
            supervisor.every("subscriptions-expire", SUBSCRIPTIONS_EXPIRE_S, partial(data.forget_expired_pending, pool))
            # SMS lookups ask search; no proxies from the environment, bounded time (lookup sets it per request).
            search_http = await stack.enter_async_context(httpx.AsyncClient(trust_env=False))
            app.state.redis, app.state.sms_provider, app.state.search_http = redis_client, provider, search_http
            # --- end SMS ---
            supervisor.consume(
                js,
                settings,
                stream=STATUS,
                durable=events.STATUS_CONSUMER,
                handler=partial(events.handle_status_event, pool),
                batch_handler=partial(events.handle_status_events, pool),
            )
            supervisor.prune_inbox(pool, settings, consumer=events.STATUS_CONSUMER)
            # --- alerts: points and status events in, planner and flusher loops ---
            supervisor.consume(
                js,
                settings,
                stream=POINTS,
                durable=events.POINTS_CONSUMER,
                handler=partial(events.handle_point_event, pool),
            )
            supervisor.consume(
                js,
                settings,
                stream=STATUS,
                durable=events.STATUS_ALERTS_CONSUMER,
                handler=partial(events.handle_alert_event, pool),
                batch_handler=partial(events.handle_alert_events, pool),
            )
            supervisor.prune_inbox(pool, settings, consumer=events.STATUS_ALERTS_CONSUMER)
            # This replica's area subscriptions in memory (loaded by the first plan or flush, then kept current).
            area_index = AreaIndex()
            supervisor.every(
                "alerts-plan", settings.alert_plan_interval_s, partial(alerts.plan, pool, settings, areas=area_index)
            )
            supervisor.every(
                "alerts-flush", settings.alert_flush_interval_s, partial(alerts.flush, pool, settings, areas=area_index)
            )
            supervisor.every(
                "alerts-prune-removals",
                SUBSCRIPTIONS_EXPIRE_S,
                partial(data.prune_removals, pool, older_than_s=areas.REMOVALS_KEPT_S),
            )
            webhook_client = await stack.enter_async_context(_webhook_client(settings))
            _run_webhooks(app, supervisor, js, pool, settings, webhook_client)
            broker = metrics.Broker(
                nc,
                js,
                settings.namespace,
                consumers=[
                    metrics.Consumer(STATUS, events.STATUS_CONSUMER),
                    metrics.Consumer(POINTS, events.POINTS_CONSUMER),
                    metrics.Consumer(STATUS, events.STATUS_ALERTS_CONSUMER),
                    metrics.Consumer(POINTS, events.POINTS_WEBHOOKS_CONSUMER),
                    metrics.Consumer(STATUS, events.STATUS_WEBHOOKS_CONSUMER),
                ],
            )
            app.state.settings, app.state.pool = settings, pool
            app.state.readiness = readiness_checks(pool=pool, cache=redis_client, broker=broker)
            metrics.track_broker(app.state.metrics, broker)
            yield

    app = build_app(
        service=SERVICE,
        title="Points of Invincibility — notify",
        description="SMS subscriptions (double opt-in, STOP/START by SMS), alerts and lookups through Kannel; "
        "signed webhooks for integrators.",
        lifespan=lifespan,
        routers=[
            observations_views.router,
            subscriptions_views.router,
            sms_views.router,
            contacts_views.router,
            webhooks_views.router,
        ],
        # Kannel's callbacks carry the number and the gateway token in the URL: no spans for them.
        untraced=[r"/v1/sms/"],
    )
    # Outermost: Kannel's two reports a message skip the stack (measured in bench/bench_notify_sending.py).
    app.add_middleware(sms_views.DeliveryReportFastPath)
    return app


# --- Webhooks ---


@asynccontextmanager
async def _webhook_client(settings: NotifySettings) -> AsyncIterator[httpx.AsyncClient]:
    """The HTTP client deliveries go through: no proxies from the environment, no redirects, bounded time."""
    timeout = httpx.Timeout(settings.webhook_timeout_s)
    limits = httpx.Limits(max_connections=settings.webhook_concurrency * 2)
    async with httpx.AsyncClient(timeout=timeout, limits=limits, trust_env=False, follow_redirects=False) as client:
        yield client


def _run_webhooks(
    app: FastAPI,
    supervisor: Supervisor,
    js: JetStreamContext,
    pool: asyncpg.Pool,
    settings: NotifySettings,
    client: httpx.AsyncClient,
) -> None:
    """Learn points, turn status events into deliveries, and send them, until the app stops."""
    # Made here, not in the factory: an event belongs to the loop it is first awaited in, and each lifespan has its own.
    wake = app.state.webhook_wake = asyncio.Event()
    counter = app.state.metrics.counter(
        "poi_webhook_deliveries",
        "Webhook delivery attempts by outcome: delivered, retry (failed, tried again later) or dead (gave up).",
        ["outcome"],
    )
    supervisor.consume(
        js,
        settings,
        stream=POINTS,
        durable=events.POINTS_WEBHOOKS_CONSUMER,
        handler=partial(events.handle_point_event_for_webhooks, pool),
    )
    supervisor.consume(
        js,
        settings,
        stream=STATUS,
        durable=events.STATUS_WEBHOOKS_CONSUMER,
        handler=partial(events.handle_status_event_for_webhooks, pool, queued=wake.set),
        batch_handler=partial(events.handle_status_events_for_webhooks, pool, queued=wake.set),
    )
    for consumer in (events.POINTS_WEBHOOKS_CONSUMER, events.STATUS_WEBHOOKS_CONSUMER):
        supervisor.prune_inbox(pool, settings, consumer=consumer)
    supervisor.every(
        "webhook-deliveries-prune",
        settings.inbox_prune_interval_s,
        partial(
            data.prune_deliveries, pool, older_than_s=settings.webhook_retention_s, batch=settings.inbox_prune_batch
        ),
    )
    supervisor.start(
        "webhook-deliveries",
        partial(
            webhook_delivery.run_deliveries,
            pool,
            client,
            settings,
            stop=supervisor.stop,
            wake=wake,
            count=lambda outcome: counter.labels(outcome).inc(),
        ),
    )
