"""The bench's server: the real search app (fed from NATS), plus its two baselines on the same server.

- `/empty`: the cheapest JSON answer FastAPI gives (baseline a);
- `/bench/postgis/nearest`: the same query answered by PostGIS with a GiST index, JSON built by PostgreSQL (b);
- `/bench/info`: when the replica caught up, counted from the start of its lifespan.

Neither baseline is rate limited or traced, like the search routes are not traced; the search routes are rate
limited (with limits set high by the bench) as in production.
"""

import os
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
from fastapi import FastAPI, Request, Response

from poi_search.app import UNTRACED
from poi_search.app import create_app as create_search
from poi_search.settings import SearchSettings

POSTGIS_ENV = "BENCH_POSTGIS_URL"
BASELINES = ("/empty", "/bench/")

POSTGIS_QUERY = """
SELECT coalesce(jsonb_agg(item || jsonb_build_object('distance_m', round(dist)) ORDER BY dist), '[]')::text,
       count(*)
FROM (
    SELECT item, ST_Distance(geog, here) AS dist
    FROM bench_points, (SELECT ST_SetSRID(ST_MakePoint($2, $1), 4326)::geography AS here) AS q
    WHERE state = 'open' AND reported_at >= now() - make_interval(secs => $5)
      AND services @> $3::text[] AND ST_DWithin(geog, here, $4)
    ORDER BY geog <-> here
    LIMIT $6
) AS nearest
"""


def create_app() -> FastAPI:
    """The app for `uvicorn --factory`: search configured from POI_SEARCH_*, with the baselines beside it."""
    started = time.monotonic()
    settings = SearchSettings()
    app = create_search(settings, untraced=(*UNTRACED, *BASELINES))
    search_lifespan = app.router.lifespan_context
    caught_up: list[float] = []

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        lifespan_started = time.monotonic()
        async with search_lifespan(app):
            url = os.environ.get(POSTGIS_ENV)
            app.state.postgis = await asyncpg.create_pool(url, min_size=4, max_size=8) if url else None
            data_age = app.state.data_age
            app.state.data_age = lambda: _note_caught_up(data_age(), caught_up, lifespan_started)
            try:
                yield
            finally:
                if app.state.postgis is not None:
                    await app.state.postgis.close()

    app.router.lifespan_context = lifespan

    @app.get("/empty", include_in_schema=False, response_model=None)
    async def empty() -> dict[str, object]:
        """Baseline (a): the cheapest JSON answer FastAPI gives."""
        return {}

    @app.get("/bench/postgis/nearest", include_in_schema=False, response_model=None)
    async def postgis_nearest(request: Request) -> Response:
        """Baseline (b): the same nearest query answered by PostGIS (geography <-> with a GiST index)."""
        q = request.query_params
        row = await app.state.postgis.fetchrow(
            POSTGIS_QUERY,
            float(q["lat"]),
            float(q["lon"]),
            q.getlist("service"),
            float(q["radius_km"]) * 1000,
            settings.open_max_age_s,
            int(q["limit"]),
        )
        body = b'{"items":' + row[0].encode() + b',"count":' + str(row[1]).encode() + b"}"
        return Response(body, media_type="application/json")

    @app.get("/bench/info", include_in_schema=False, response_model=None)
    async def info() -> dict[str, object]:
        """When the replica caught up, in seconds from the start of the process and of its lifespan."""
        app.state.data_age()
        return {"caught_up_s": caught_up[0] if caught_up else None, "process_s": time.monotonic() - started}

    return app


def _note_caught_up(age: float | None, caught_up: list[float], since: float) -> float | None:
    """Pass the data age through, noting when there first was one (the bench asks often while it waits)."""
    if age is not None and not caught_up:
        caught_up.append(time.monotonic() - since)
    return age
