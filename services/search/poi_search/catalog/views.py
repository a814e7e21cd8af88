"""Public query routes: nearest, map box and text search (no token; an API key or token raises the rate limit)."""

import time

from fastapi import APIRouter, Request, Response
from starlette.types import Scope

from poi_search.catalog import service
from poi_search.catalog.models import (
    BoxAnswer,
    BoxQuery,
    NearestAnswer,
    NearestQuery,
    TextAnswer,
    TextQuery,
    read_nearest,
)
from poi_search.catalog.readmodel import ReadModel
from poi_search.http import QuickHandler, RawAnswer, answer, data_age, parse_query, query_parameters, raw_answer
from poi_search.settings import SearchSettings
from poi_shared.errors import invalid

router = APIRouter(prefix="/v1/search", tags=["search"])


def _cap(value: int, cap: int, name: str) -> int:
    if value > cap:
        raise invalid(("query", name), f"must be at most {cap}", "less_than_equal")
    return value


@router.get(
    "/nearest",
    summary="Nearest points with their live status",
    response_model=None,
    responses={200: {"model": NearestAnswer, "description": "Nearest first."}},
    openapi_extra=query_parameters(NearestQuery),
)
async def nearest(request: Request) -> Response:
    """The nearest visible points matching the filters, within the radius; coarse ones at their rounded place."""
    query = parse_query(request, NearestQuery)
    settings: SearchSettings = request.app.state.settings
    limit = _cap(query.limit, settings.max_limit, "limit")
    if query.radius_km > settings.max_radius_km:
        raise invalid(("query", "radius_km"), f"must be at most {settings.max_radius_km:g}", "less_than_equal")
    age_s, now = data_age(request), time.time()
    filters = service.filters_of(query, now=now, open_max_age_s=settings.open_max_age_s)
    model: ReadModel = request.app.state.read_model
    found = service.nearest(
        model, query, limit=limit, radius_m=query.radius_km * 1000, filters=filters, now=now, age_s=age_s
    )
    return answer(request, found.body, etag=found.etag, max_age_s=settings.cache_max_age_s, data_age_s=age_s)


def nearest_quickly(scope: Scope) -> RawAnswer | None:
    """The nearest route's answer to a plain, valid query once caught up (see QuickRoutes); None for the route."""
    state = scope["app"].state
    settings: SearchSettings = state.settings
    raw: bytes = scope["query_string"]
    if len(raw) > settings.max_query_bytes:
        return None
    query = read_nearest(raw)
    if query is None or query.limit > settings.max_limit or query.radius_km > settings.max_radius_km:
        return None
    age_s: float | None = state.data_age()
    if age_s is None:
        return None
    now = time.time()
    filters = service.filters_of(query, now=now, open_max_age_s=settings.open_max_age_s)
    found = service.nearest(
        state.read_model,
        query,
        limit=query.limit,
        radius_m=query.radius_km * 1000,
        filters=filters,
        now=now,
        age_s=age_s,
    )
    return raw_answer(
        scope,
        found.body,
        etag=found.etag,
        max_age_s=settings.cache_max_age_s,
        data_age_s=age_s,
        gzip_min_bytes=settings.gzip_min_bytes,
    )


QUICK: dict[str, QuickHandler] = {f"{router.prefix}/nearest": nearest_quickly}
"""The routes answered by QuickRoutes in their common case."""


@router.get(
    "/bbox",
    summary="Points in a map viewport",
    response_model=None,
    responses={200: {"model": BoxAnswer, "description": "Nearest the box's centre first."}},
    openapi_extra=query_parameters(BoxQuery),
)
async def within_box(request: Request) -> Response:
    """The visible points in the box matching the filters, at most limit of them, nearest its centre first."""
    query = parse_query(request, BoxQuery)
    settings: SearchSettings = request.app.state.settings
    limit = _cap(query.limit, settings.max_box_limit, "limit")
    age_s, now = data_age(request), time.time()
    filters = service.filters_of(query, now=now, open_max_age_s=settings.open_max_age_s)
    found = service.within(request.app.state.read_model, query, limit=limit, filters=filters, now=now, age_s=age_s)
    return answer(request, found.body, etag=found.etag, max_age_s=settings.cache_max_age_s, data_age_s=age_s)


@router.get(
    "/text",
    summary="Points by name, address or settlement",
    response_model=None,
    responses={200: {"model": TextAnswer, "description": "Best matches first."}},
    openapi_extra=query_parameters(TextQuery),
)
async def search_text(request: Request) -> Response:
    """Points whose names, address or settlement match the words, in Ukrainian or Latin script, typos allowed."""
    query = parse_query(request, TextQuery)
    settings: SearchSettings = request.app.state.settings
    limit = _cap(query.limit, settings.max_limit, "limit")
    if (query.lat is None) != (query.lon is None):
        missing = "lon" if query.lon is None else "lat"
        raise invalid(("query", missing), "give lat and lon together", "missing")
    age_s, now = data_age(request), time.time()
    filters = service.filters_of(query, now=now, open_max_age_s=settings.open_max_age_s, katotth=query.katotth)
    found = service.search_text(request.app.state.read_model, query, limit=limit, filters=filters, now=now, age_s=age_s)
    return answer(request, found.body, etag=found.etag, max_age_s=settings.cache_max_age_s, data_age_s=age_s)
