"""Prometheus metrics: one registry per app, HTTP metrics by route template, and gauges read at scrape time."""

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg
from fastapi import FastAPI, Request, Response
from nats.aio.client import Client as NATS
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from poi_shared.contracts import DEAD_LETTERS, StreamSpec
from poi_shared.health import Probes
from poi_shared.outbox import backlog

log = logging.getLogger(__name__)
Source = Callable[[], Awaitable[None]]
# Scrape-time reads are bounded and shared by scrapes that come close together, so a broker or database outage
# never blocks a scrape and many scrapers never multiply the load.
SOURCE_TIMEOUT_S = 0.5
CACHE_S = 1.0
UNMATCHED_ROUTE = "unmatched"


@dataclass(frozen=True)
class Consumer:
    """A durable consumer a service runs on a stream."""

    stream: StreamSpec
    durable: str


@dataclass(frozen=True)
class Broker:
    """A service's NATS connection and the durable consumers it runs."""

    nc: NATS
    js: JetStreamContext
    namespace: str
    consumers: Sequence[Consumer] = ()


@dataclass(frozen=True)
class ConsumerLag:
    """What a durable consumer has not finished yet, as the broker sees it."""

    pending: int  # in the stream, not yet delivered
    ack_pending: int  # delivered, not yet acknowledged
    redelivered: int  # delivered more than once, not yet acknowledged


class ServiceMetrics:
    """One app's Prometheus registry: HTTP metrics, plus gauges whose sources are read when scraped."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.sources: dict[str, Source] = {}
        self._gauges: dict[str, Gauge] = {}
        self._counters: dict[str, Counter] = {}
        self._refreshed_at = float("-inf")
        self._probes = Probes()
        self._request_series: dict[tuple[str, str, int], tuple[Any, Any]] = {}
        self.requests = Counter(
            "poi_http_requests",
            "HTTP requests answered, by method, route template and status class (2xx, 4xx, 5xx).",
            ["method", "route", "status_class"],
            registry=self.registry,
        )
        self.duration = Histogram(
            "poi_http_request_duration_seconds",
            "Time to answer an HTTP request, by method and route template.",
            ["method", "route"],
            registry=self.registry,
        )
        self.source_up = self.gauge(
            "poi_metrics_source_up", "1 if the last scrape-time read of this source answered in time.", ["source"]
        )

    def gauge(self, name: str, documentation: str, labels: Sequence[str] = ()) -> Gauge:
        """The app's gauge of that name, created on first use (a lifespan may run more than once per app)."""
        if name not in self._gauges:
            self._gauges[name] = Gauge(name, documentation, list(labels), registry=self.registry)
        return self._gauges[name]

    def counter(self, name: str, documentation: str, labels: Sequence[str] = ()) -> Counter:
        """The app's counter of that name (exposed as <name>_total), created on first use."""
        if name not in self._counters:
            self._counters[name] = Counter(name, documentation, list(labels), registry=self.registry)
        return self._counters[name]

    def on_scrape(self, name: str, source: Source) -> None:
        """Read source (which sets gauges) before each scrape; a later source of the same name replaces it."""
        self.sources[name] = source

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        """Count one answered request and its latency."""
        # The labelled series are looked up once each: labels() validates and locks on every call.
        key = (method, route, status // 100)
        series = self._request_series.get(key)
        if series is None:
            series = self._request_series[key] = (
                self.requests.labels(method, route, f"{status // 100}xx"),
                self.duration.labels(method, route),
            )
        series[0].inc()
        series[1].observe(seconds)

    async def refresh(self) -> None:
        """Read every source concurrently, each bounded; skipped if the last read is fresh enough."""
        now = time.monotonic()
        if now - self._refreshed_at < CACHE_S:
            return
        self._refreshed_at = now
        await asyncio.gather(*(self._read(name, source) for name, source in list(self.sources.items())))

    async def _read(self, name: str, source: Source) -> None:
        try:
            await self._probes.run(name, source, SOURCE_TIMEOUT_S)
        except Exception as exc:
            # Gauges keep their last values; this says they are not current.
            log.debug("metrics source %s failed: %r", name, exc)
            self.source_up.labels(name).set(0)
        else:
            self.source_up.labels(name).set(1)

    async def render(self) -> bytes:
        """The Prometheus text exposition, after reading the scrape-time sources."""
        await self.refresh()
        return generate_latest(self.registry)


class HttpMetricsMiddleware:
    """Counts and times every HTTP request under its route template, never its raw path."""

    def __init__(self, app: ASGIApp, metrics: ServiceMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        # An exception escaping here becomes a 5xx in the outer error middleware.
        status = 500

        async def send_and_note(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_note)
        finally:
            # The router puts the matched route in the scope; unmatched paths share one label so they stay few.
            route = getattr(scope.get("route"), "path", None) or UNMATCHED_ROUTE
            self.metrics.observe_request(scope["method"], route, status, time.perf_counter() - start)


def install(app: FastAPI) -> ServiceMetrics:
    """Give the app its own registry, the HTTP middleware and GET /metrics."""
    metrics = ServiceMetrics()
    app.state.metrics = metrics
    app.add_middleware(HttpMetricsMiddleware, metrics=metrics)

    async def scrape(request: Request) -> Response:
        return Response(await metrics.render(), media_type=CONTENT_TYPE_LATEST)

    app.add_api_route("/metrics", scrape, methods=["GET"], include_in_schema=False)
    return metrics


async def consumer_lag(broker: Broker, *, timeout_s: float = SOURCE_TIMEOUT_S) -> dict[str, ConsumerLag]:
    """Each durable consumer's lag from the broker; a consumer not created yet is left out."""

    async def one(consumer: Consumer) -> ConsumerLag | None:
        try:
            info = await broker.js.consumer_info(
                consumer.stream.stream_name(broker.namespace), consumer.durable, timeout=timeout_s
            )
        except NotFoundError:
            return None
        return ConsumerLag(info.num_pending or 0, info.num_ack_pending or 0, info.num_redelivered or 0)

    lags = await asyncio.gather(*(one(c) for c in broker.consumers))
    return {c.durable: lag for c, lag in zip(broker.consumers, lags, strict=True) if lag is not None}


async def dead_letter_counts(broker: Broker) -> dict[str, int]:
    """How many dead letters each of the broker's consumers has in the dead-letter stream."""
    info = await broker.js.stream_info(
        DEAD_LETTERS.stream_name(broker.namespace), subjects_filter=DEAD_LETTERS.wildcard(broker.namespace)
    )
    per_subject = info.state.subjects or {}
    return {c.durable: per_subject.get(DEAD_LETTERS.subject(broker.namespace, c.durable), 0) for c in broker.consumers}


def track_broker(metrics: ServiceMetrics, broker: Broker) -> None:
    """NATS connection state; per durable consumer its lag, redeliveries and dead letters."""
    metrics.gauge("poi_nats_connected", "1 while the connection to NATS is up.").set_function(
        lambda: float(broker.nc.is_connected)
    )
    if not broker.consumers:
        return
    labels = ("stream", "consumer")
    pending = metrics.gauge("poi_consumer_pending_messages", "Messages in the stream not yet delivered.", labels)
    ack_pending = metrics.gauge(
        "poi_consumer_ack_pending_messages", "Messages delivered to the consumer, not yet acknowledged.", labels
    )
    redelivered = metrics.gauge(
        "poi_consumer_redelivered_messages", "Messages delivered more than once, not yet acknowledged.", labels
    )
    dead = metrics.gauge(
        "poi_dead_letters", "Messages the consumer gave up on, in the dead-letter stream.", ["consumer"]
    )
    streams = {c.durable: c.stream.stream_name(broker.namespace) for c in broker.consumers}

    async def read_lag() -> None:
        for durable, lag in (await consumer_lag(broker)).items():
            pending.labels(streams[durable], durable).set(lag.pending)
            ack_pending.labels(streams[durable], durable).set(lag.ack_pending)
            redelivered.labels(streams[durable], durable).set(lag.redelivered)

    async def read_dead_letters() -> None:
        for durable, count in (await dead_letter_counts(broker)).items():
            dead.labels(durable).set(count)

    metrics.on_scrape("consumers", read_lag)
    metrics.on_scrape("dead_letters", read_dead_letters)


def track_outbox(metrics: ServiceMetrics, pool: asyncpg.Pool) -> None:
    """How many events wait in the outbox, and for how long the oldest has waited."""
    pending = metrics.gauge("poi_outbox_pending_messages", "Events committed but not yet published.")
    oldest = metrics.gauge("poi_outbox_oldest_age_seconds", "Age of the oldest unpublished event; 0 when none.")

    async def read_outbox() -> None:
        async with pool.acquire(timeout=SOURCE_TIMEOUT_S) as conn:
            count, age_s = await backlog(conn, timeout_s=SOURCE_TIMEOUT_S)
        pending.set(count)
        oldest.set(age_s)

    metrics.on_scrape("outbox", read_outbox)
