"""The search service's app factory."""

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI

from poi_search.catalog import views as catalog_views
from poi_search.catalog.feed import follow_stream
from poi_search.catalog.readmodel import ReadModel
from poi_search.settings import SearchSettings
from poi_shared import jetstream
from poi_shared.app import Supervisor, build_app
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
        nc = await jetstream.connect(settings.nats_url, name=SERVICE, timeout_s=settings.startup_timeout_s)
        js = nc.jetstream()
        await jetstream.ensure_streams(js, settings.namespace)

        def apply(event: Event) -> None:
            if isinstance(event.data, PointState):
                model.apply_point(event.data)
            elif isinstance(event.data, StatusState):
                model.apply_status(event.data)

        supervisor = Supervisor()

        def follower(stream: StreamSpec, loaded: asyncio.Event) -> Callable[[], Awaitable[None]]:
            return lambda: follow_stream(
                js, namespace=settings.namespace, stream=stream, apply=apply, caught_up=loaded, stop=supervisor.stop
            )

        supervisor.start("follow-points", follower(POINTS, points_loaded))
        supervisor.start("follow-status", follower(STATUS, statuses_loaded))

        def caught_up() -> bool:
            return points_loaded.is_set() and statuses_loaded.is_set()

        async def catalog_loaded() -> str | None:
            return None if caught_up() else "catching up with the streams"

        app.state.settings, app.state.read_model, app.state.caught_up = settings, model, caught_up
        app.state.readiness = {"nats": lambda: jetstream.check_connected(nc), "catalog": catalog_loaded}
        try:
            yield
        finally:
            await supervisor.close()
            await nc.drain()

    return build_app(
        service=SERVICE,
        title="Points of Invincibility — search",
        description="Nearest points with live status, answered from memory. Public, no token needed.",
        lifespan=lifespan,
        routers=[catalog_views.router],
    )
