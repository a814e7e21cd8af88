"""The search service's app factory."""

import math
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager

import redis.asyncio as redis
from fastapi import FastAPI
from prometheus_client import Histogram
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware

from poi_search import clients, data, events
from poi_search.catalog import views as catalog_views
from poi_search.catalog.readmodel import ReadModel
from poi_search.changes import views as changes_views
from poi_search.http import QuickRoutes
from poi_search.keys import views as keys_views
from poi_search.keys.service import KeyRing
from poi_search.opendata import views as opendata_views
from poi_search.opendata.service import ExportCache
from poi_search.settings import SearchSettings
from poi_shared import metrics
from poi_shared.app import build_app, nats_connection, readiness_checks, supervised
from poi_shared.contracts import POINTS, STATUS, StreamSpec
from poi_shared.telemetry import configure_logging

SERVICE = "poi-search"
EXPOSED_HEADERS = ["ETag", "X-Data-Age", "RateLimit", "RateLimit-Policy", "Retry-After", "Location"]
# Public reads get no span: at spike load a span per request costs more than the answer (measured: it halves the
# requests a replica serves). Keys, health and metrics are traced as usual.
UNTRACED = tuple(rf"^https?://[^/]+{prefix}" for prefix in clients.PUBLIC_PREFIXES)


def create_app(settings: SearchSettings | None = None, *, untraced: tuple[str, ...] = UNTRACED) -> FastAPI:
    """Build the search app; the read model fills in the lifespan. Paths matching untraced get no spans."""
    settings = settings or SearchSettings()
    configure_logging(SERVICE, settings.log_level)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        model = ReadModel(index_delta_max=settings.index_delta_max)
        progress = {POINTS.name: events.StreamProgress(), STATUS.name: events.StreamProgress()}
        key_ring = KeyRing()
        apply = events.applier(model)
        visible_after: Histogram = app.state.visible_after

        def data_age() -> float | None:
            return events.data_age_s(progress.values())

        async def caught_up_once() -> str | None:
            return None if data_age() is not None else "catching up with the streams"

        async def data_age_fact() -> float | None:
            age = data_age()
            return None if age is None else round(age, 1)

        async with AsyncExitStack() as stack:
            cache = redis.Redis.from_url(settings.redis_url, socket_timeout=1, socket_connect_timeout=1)
            stack.push_async_callback(cache.aclose)
            limiter = clients.RateLimiter(cache, namespace=settings.namespace, window_s=settings.rate_limit_window_s)
            nc, js = await stack.enter_async_context(nats_connection(settings, service=SERVICE))
            supervisor = await stack.enter_async_context(supervised())

            def follower(stream: StreamSpec) -> Callable[[], Awaitable[None]]:
                return lambda: events.follow_stream(
                    js,
                    namespace=settings.namespace,
                    stream=stream,
                    apply=apply,
                    progress=progress[stream.name],
                    stop=supervisor.stop,
                    on_live_event=visible_after.labels(stream.name.lower()).observe,
                )

            async def merge_index() -> None:
                model.merge_index()

            async def watch_keys() -> None:
                app.state.keys_bucket = await data.open_keys(js, settings.namespace)
                await data.watch_keys(
                    app.state.keys_bucket, on_value=key_ring.apply, on_loaded=key_ring.mark_loaded, stop=supervisor.stop
                )

            app.state.settings, app.state.read_model, app.state.data_age = settings, model, data_age
            app.state.progress = progress
            app.state.key_ring, app.state.keys_bucket, app.state.rate_limiter = key_ring, None, limiter
            app.state.exports = ExportCache()
            supervisor.start("follow-points", follower(POINTS))
            supervisor.start("follow-status", follower(STATUS))
            supervisor.every("merge-index", settings.index_merge_s, merge_index)
            supervisor.start("integrator-keys", watch_keys)
            supervisor.start(
                "rate-limit-sync",
                lambda: clients.sync_limits(limiter, every_s=settings.rate_limit_sync_s, stop=supervisor.stop),
            )
            broker = metrics.Broker(nc, js, settings.namespace)
            # Ready once caught up; afterwards a broker outage only makes the data older, which every answer says.
            app.state.readiness = readiness_checks(
                cache=cache, broker=broker, required={"catalog": caught_up_once}, facts={"data_age_s": data_age_fact}
            )
            _track(app.state.metrics, broker, model, data_age)
            app.state.metrics.gauge(
                "poi_search_rate_limits_shared",
                "1 while this replica shares its rate-limit counts through Redis; 0 while it limits on its own.",
            ).set_function(lambda: float(limiter.redis_up))
            yield

    app = build_app(
        service=SERVICE,
        title="Points of Invincibility — search",
        description=(
            "Nearest, map box and text search over every public point with its live status, answered from memory; "
            "open data (GeoJSON, CSV, OGC API – Features) and a change feed for integrators. Public, no token "
            "needed: an integrator key (X-API-Key) or a token with the integrator role raises the rate limit."
        ),
        lifespan=lifespan,
        routers=[
            catalog_views.router,
            opendata_views.router,
            opendata_views.ogc,
            changes_views.router,
            keys_views.router,
        ],
        untraced=untraced,
    )
    app.state.visible_after = Histogram(
        "poi_search_event_visible_seconds",
        "Seconds from an event's creation (its ce-time) to its answer in this replica's queries, after catch-up.",
        ["stream"],
        buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
        registry=app.state.metrics.registry,
    )
    # Inside the HTTP metrics (so refusals are counted), outside the routes: the last of the app's middleware.
    app.user_middleware.append(Middleware(clients.ClientLimits))
    # Innermost, inside the limits: the hot reads' common case skips the router (see QuickRoutes).
    app.user_middleware.append(Middleware(QuickRoutes, handlers=catalog_views.QUICK))
    app.add_middleware(
        CORSMiddleware,
        allow_origins=settings.cors_origins,
        allow_methods=["GET"],
        allow_headers=["Authorization", clients.API_KEY_HEADER, "If-None-Match"],
        expose_headers=EXPOSED_HEADERS,
        max_age=600,
    )
    clients.document_clients(app)
    return app


def _track(
    service_metrics: metrics.ServiceMetrics,
    broker: metrics.Broker,
    model: ReadModel,
    data_age: Callable[[], float | None],
) -> None:
    """The read model's size and data age on /metrics."""
    metrics.track_broker(service_metrics, broker)
    service_metrics.gauge("poi_search_points", "Points in this replica's read model.").set_function(
        lambda: model.point_count
    )
    service_metrics.gauge("poi_search_statuses", "Point statuses in this replica's read model.").set_function(
        lambda: model.status_count
    )
    service_metrics.gauge(
        "poi_search_data_age_seconds",
        "Seconds since this replica last confirmed it held every event of its streams; NaN before then.",
    ).set_function(lambda: math.nan if (age := data_age()) is None else age)
