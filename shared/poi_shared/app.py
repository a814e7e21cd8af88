"""What every app factory needs: FastAPI with errors, health, metrics and tracing; supervised background work."""

import asyncio
import dataclasses
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from functools import partial
from typing import Any

import asyncpg
import redis.asyncio as redis
from fastapi import APIRouter, FastAPI
from fastapi.routing import APIRoute
from nats.aio.client import Client as NATS
from nats.js import JetStreamContext

from poi_shared import db, health, inbox, jetstream, metrics, outbox
from poi_shared.auth import TokenVerifier
from poi_shared.contracts import REPLAY, StreamSpec
from poi_shared.errors import install_error_handlers
from poi_shared.intake import BodySizeLimit, SecurityHeaders
from poi_shared.models import MAX_BODY_BYTES
from poi_shared.openapi import CONTACT, LICENSE, SERVERS, install_openapi
from poi_shared.settings import AuthSettings, DatabaseServiceSettings, ServiceSettings
from poi_shared.telemetry import configure_tracing

log = logging.getLogger(__name__)


def build_app(
    *,
    service: str,
    title: str,
    description: str,
    lifespan: Any,
    routers: Sequence[APIRouter],
    body_limits: Mapping[str, int] | None = None,
    untraced: Sequence[str] = (),
) -> FastAPI:
    """A FastAPI app: problem+json errors, /livez, /readyz, /metrics, token verification, tracing, complete OpenAPI.

    body_limits gives paths that take more than MAX_BODY_BYTES (e.g. a bulk import) their own limit. Requests to
    paths matching an untraced pattern (a regular expression searched in the URL) get no span: for public reads at
    spike load, where a span per request would cost more than the answer.
    """
    app = FastAPI(
        title=title,
        description=description,
        version="1.0.0",
        lifespan=lifespan,
        contact=CONTACT,
        license_info=LICENSE,
        servers=SERVERS,
        generate_unique_id_function=_operation_id,
        # Requests are traced by configure_tracing, or not at all. FastAPI's own telemetry would otherwise wake as
        # soon as a tracer provider is set, and cost every request a pass over the middleware stack (and, without
        # the OpenTelemetry middleware, spans of its own) whether or not anything is exported.
        telemetry={"tracing": False, "metrics": False, "logs": False, "operation_spans": False},
    )
    app.state.token_verifier = TokenVerifier(AuthSettings())
    install_error_handlers(app)
    install_openapi(app)
    metrics.install(app)
    # Also refuses a body the route does not take (415), only for requests that have one.
    app.add_middleware(BodySizeLimit, max_bytes=MAX_BODY_BYTES, limits=body_limits, json_only=True)
    app.add_middleware(SecurityHeaders)
    app.include_router(health.router)
    for router in routers:
        app.include_router(router)
    configure_tracing(service, app, untraced)
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

    def every(self, name: str, interval_s: float, job: Callable[[], Awaitable[object]]) -> None:
        """Run job() now and then every interval_s until stopped; a failed run waits for the next."""

        async def loop() -> None:
            while not self.stop.is_set():
                try:
                    await job()
                except Exception as exc:
                    log.warning("%s failed, next run in %.0fs: %r", name, interval_s, exc)
                try:
                    await asyncio.wait_for(self.stop.wait(), interval_s)
                except TimeoutError:
                    pass

        self.start(name, loop)

    def consume(
        self,
        js: JetStreamContext,
        settings: ServiceSettings,
        *,
        stream: StreamSpec,
        durable: str,
        handler: jetstream.Handler,
        batch_handler: jetstream.BatchHandler | None = None,
    ) -> None:
        """Run a durable consumer of the stream, and of the dead letters replayed to it, until stopped (see
        jetstream.run_consumer for batch_handler)."""
        # The stream itself, and the replay stream's subject where `poi deadletters replay` sends this consumer's own.
        sources = {durable: (stream, None), f"{durable}-replay": (REPLAY, REPLAY.subject(settings.namespace, durable))}
        for name, (source, filter_subject) in sources.items():
            self.start(
                name,
                partial(
                    jetstream.run_consumer,
                    js,
                    namespace=settings.namespace,
                    stream=source,
                    filter_subject=filter_subject,
                    durable=durable,
                    handler=handler,
                    batch_handler=batch_handler,
                    stop=self.stop,
                    batch=settings.consumer_batch,
                    ack_wait_s=settings.consumer_ack_wait_s,
                    retry_initial_s=settings.consumer_retry_initial_s,
                    retry_max_s=settings.consumer_retry_max_s,
                    poison_budget=settings.consumer_poison_budget,
                    publish_timeout_s=settings.publish_timeout_s,
                ),
            )

    def prune_inbox(self, pool: asyncpg.Pool, settings: DatabaseServiceSettings, *, consumer: str) -> None:
        """Periodically forget the consumer's inbox rows older than the retention."""
        self.every(
            f"{consumer}-inbox-prune",
            settings.inbox_prune_interval_s,
            partial(
                inbox.prune,
                pool,
                consumer=consumer,
                older_than_s=settings.inbox_retention_s,
                batch=settings.inbox_prune_batch,
            ),
        )

    def relay_outbox(self, pool: asyncpg.Pool, js: JetStreamContext, settings: DatabaseServiceSettings) -> None:
        """Publish the service's outbox until stopped."""
        self.start(
            "outbox-relay",
            partial(
                outbox.run_relay,
                pool,
                js,
                stop=self.stop,
                batch=settings.outbox_batch,
                batch_timeout_s=settings.outbox_batch_timeout_s,
                publish_timeout_s=settings.publish_timeout_s,
                poll_s=settings.outbox_poll_s,
                linger_s=settings.outbox_linger_s,
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
        settings.database_url,
        timeout_s=settings.startup_timeout_s,
        max_size=settings.db_pool_max,
        acquire_timeout_s=settings.db_acquire_timeout_s,
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
        await jetstream.ensure_streams(js, settings.namespace, replicas=settings.stream_replicas)
        yield nc, js
    finally:
        # Draining needs the server; during a broker outage just close (the outbox keeps what was not sent).
        try:
            if nc.is_connected:
                await nc.drain()
            else:
                await nc.close()
        except Exception as exc:  # the client's tasks are stopped by then; only unsent bytes are left
            log.warning("closing the NATS connection during an outage: %r", exc)


@asynccontextmanager
async def supervised() -> AsyncIterator[Supervisor]:
    """Background loops that stop, in order, before the connections they use close."""
    supervisor = Supervisor()
    try:
        yield supervisor
    finally:
        await supervisor.close()


def readiness_checks(
    *,
    pool: asyncpg.Pool | None = None,
    cache: redis.Redis | None = None,
    broker: metrics.Broker | None = None,
    required: Mapping[str, health.Check] | None = None,
    facts: Mapping[str, health.Fact] | None = None,
) -> health.Readiness:
    """PostgreSQL (and any given check) decides readiness; NATS, consumer lag and Redis outages are only reported."""
    required_checks: dict[str, health.Check] = dict(required or {})
    reported: dict[str, health.Check] = {}
    all_facts: dict[str, health.Fact] = dict(facts or {})
    if pool is not None:
        required_checks["postgresql"] = lambda: health.postgresql_answers(pool)
    if cache is not None:
        reported["redis"] = lambda: health.redis_answers(cache)
    if broker is not None:
        reported["nats"] = lambda: health.nats_answers(broker.nc)
        if broker.consumers:
            all_facts["consumers"] = lambda: _consumer_lag_report(broker)
    return health.Readiness(required=required_checks, reported=reported, facts=all_facts)


async def _consumer_lag_report(broker: metrics.Broker) -> dict[str, dict[str, int]]:
    """Each consumer's lag, as /readyz shows it."""
    lags = await metrics.consumer_lag(broker, timeout_s=health.CHECK_TIMEOUT_S)
    return {durable: dataclasses.asdict(lag) for durable, lag in lags.items()}
