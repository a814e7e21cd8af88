"""The search service's app factory."""

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager

from fastapi import FastAPI

from poi_search.catalog import views as catalog_views
from poi_search.catalog.feed import follow_stream
from poi_search.catalog.readmodel import ReadModel
from poi_search.settings import SearchSettings
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
        points_loaded, statuses_loaded = asyncio.Event(), asyncio.Event()

        def apply(event: Event) -> None:
            if isinstance(event.data, PointState):
                model.apply_point(event.data)
            elif isinstance(event.data, StatusState):
                model.apply_status(event.data)

        def caught_up() -> bool:
            return points_loaded.is_set() and statuses_loaded.is_set()

        async def catalog_loaded() -> str | None:
            return None if caught_up() else "catching up with the streams"

        async with AsyncExitStack() as stack:
            nc, js = await stack.enter_async_context(nats_connection(settings, service=SERVICE))
            supervisor = await stack.enter_async_context(supervised())

            def follower(stream: StreamSpec, loaded: asyncio.Event) -> Callable[[], Awaitable[None]]:
                return lambda: follow_stream(
                    js, namespace=settings.namespace, stream=stream, apply=apply, caught_up=loaded, stop=supervisor.stop
                )

            supervisor.start("follow-points", follower(POINTS, points_loaded))
            supervisor.start("follow-status", follower(STATUS, statuses_loaded))
            app.state.settings, app.state.read_model, app.state.caught_up = settings, model, caught_up
            app.state.readiness = {**readiness_checks(nc=nc), "catalog": catalog_loaded}
            yield

    return build_app(
        service=SERVICE,
        title="Points of Invincibility — search",
        description="Nearest points with live status, answered from memory. Public, no token needed.",
        lifespan=lifespan,
        routers=[catalog_views.router],
    )
