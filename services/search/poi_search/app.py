"""The search service's app factory."""

import math
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager

from fastapi import FastAPI

from poi_search.catalog import views as catalog_views
from poi_search.catalog.feed import StreamProgress, data_age_s, follow_stream
from poi_search.catalog.readmodel import ReadModel
from poi_search.settings import SearchSettings
from poi_shared import metrics
from poi_shared.app import build_app, nats_connection, readiness_checks, supervised
from poi_shared.contracts import POINTS, STATUS, PointState, StatusState, StreamSpec
from poi_shared.envelope import Event
from poi_shared.telemetry import configure_logging

SERVICE = "poi-search"


def create_app(settings: SearchSettings | None = None) -> FastAPI:
    """Build the search app; the read model fills in the lifespan."""
    settings = settings or SearchSettings()
    configure_logging(SERVICE, settings.log_level)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        model = ReadModel()
        progress = {POINTS.name: StreamProgress(), STATUS.name: StreamProgress()}

        def apply(event: Event) -> None:
            if isinstance(event.data, PointState):
                model.apply_point(event.data)
            elif isinstance(event.data, StatusState):
                model.apply_status(event.data)

        def data_age() -> float | None:
            return data_age_s(progress.values())

        async def caught_up_once() -> str | None:
            return None if data_age() is not None else "catching up with the streams"

        async def data_age_fact() -> float | None:
            age = data_age()
            return None if age is None else round(age, 1)

        async with AsyncExitStack() as stack:
            nc, js = await stack.enter_async_context(nats_connection(settings, service=SERVICE))
            supervisor = await stack.enter_async_context(supervised())

            def follower(stream: StreamSpec) -> Callable[[], Awaitable[None]]:
                return lambda: follow_stream(
                    js,
                    namespace=settings.namespace,
                    stream=stream,
                    apply=apply,
                    progress=progress[stream.name],
                    stop=supervisor.stop,
                )

            supervisor.start("follow-points", follower(POINTS))
            supervisor.start("follow-status", follower(STATUS))
            app.state.settings, app.state.read_model, app.state.data_age = settings, model, data_age
            broker = metrics.Broker(nc, js, settings.namespace)
            # Ready once caught up; afterwards a broker outage only makes the data older, which every answer says.
            app.state.readiness = readiness_checks(
                broker=broker, required={"catalog": caught_up_once}, facts={"data_age_s": data_age_fact}
            )
            service_metrics: metrics.ServiceMetrics = app.state.metrics
            metrics.track_broker(service_metrics, broker)
            service_metrics.gauge("poi_search_points", "Points in this replica's read model.").set_function(
                lambda: len(model.points)
            )
            service_metrics.gauge("poi_search_statuses", "Point statuses in this replica's read model.").set_function(
                lambda: len(model.statuses)
            )
            service_metrics.gauge(
                "poi_search_data_age_seconds",
                "Seconds since this replica last confirmed it held every event of its streams; NaN before then.",
            ).set_function(lambda: math.nan if (age := data_age()) is None else age)
            yield

    return build_app(
        service=SERVICE,
        title="Points of Invincibility — search",
        description="Nearest points with live status, answered from memory. Public, no token needed.",
        lifespan=lifespan,
        routers=[catalog_views.router],
    )
