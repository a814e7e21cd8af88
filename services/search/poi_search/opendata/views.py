"""Open-data routes: full GeoJSON and CSV exports, and OGC API – Features (landing page, conformance, items).

OGC API routes answer an unknown or invalid query parameter with 400, as OGC API – Features Core requires; the
other routes answer 422 like the rest of the API.
"""

import time
import zlib
from typing import Annotated

import orjson
from fastapi import APIRouter, HTTPException, Path, Request, Response

from poi_search.catalog import service as catalog
from poi_search.catalog.readmodel import ReadModel
from poi_search.http import answer, data_age, parse_query, query_parameters, weak_etag
from poi_search.opendata import service
from poi_search.opendata.models import (
    Collection,
    Collections,
    Conformance,
    ExportQuery,
    ItemsQuery,
    LandingPage,
    OgcQuery,
)
from poi_search.settings import SearchSettings
from poi_shared.openapi import problems

GEOJSON = "application/geo+json"
CSV = "text/csv; charset=utf-8; header=present"


class GeoJSONResponse(Response):
    """GeoJSON (RFC 7946): what the OpenAPI document says these routes answer."""

    media_type = GEOJSON


class CSVResponse(Response):
    """CSV with a header row."""

    media_type = CSV


router = APIRouter(prefix="/v1/opendata", tags=["open data"])
ogc = APIRouter(prefix="/v1/ogc", tags=["OGC API – Features"])
FeatureId = Annotated[str, Path(pattern=r"^[0-9a-fA-F-]{32,36}$", description="The point's id.")]


def _geojson_response(description: str) -> dict[int | str, dict[str, object]]:
    return {200: {"description": description, "content": {GEOJSON: {"schema": {"type": "object"}}}}}


@router.get(
    "/points.geojson",
    summary="Every public point as GeoJSON",
    response_model=None,
    response_class=GeoJSONResponse,
    responses=_geojson_response("A GeoJSON FeatureCollection (RFC 7946), [lon, lat] positions."),
    openapi_extra=query_parameters(ExportQuery),
)
async def points_geojson(request: Request) -> Response:
    """Every visible point with its status; rebuilt at most every export_max_age_s (30 s)."""
    query = parse_query(request, ExportQuery)
    settings: SearchSettings = request.app.state.settings
    age_s, model = data_age(request), request.app.state.read_model
    export = await request.app.state.exports.get(
        "geojson",
        max_age_s=settings.export_max_age_s,
        pieces=lambda: service.features(model, model.visible_slots(), time.time()),
        join=service.feature_collection,
    )
    return _export(request, export, GEOJSON, age_s, "points.geojson", query.download)


@router.get(
    "/points.csv",
    summary="Every public point as CSV",
    response_model=None,
    response_class=CSVResponse,
    responses={200: {"description": "One row per point.", "content": {CSV: {"schema": {"type": "string"}}}}},
    openapi_extra=query_parameters(ExportQuery),
)
async def points_csv(request: Request) -> Response:
    """One row per visible point: KATOTTH code, lon, lat, services, current state and more (UTF-8, header row)."""
    query = parse_query(request, ExportQuery)
    settings: SearchSettings = request.app.state.settings
    age_s, model = data_age(request), request.app.state.read_model
    export = await request.app.state.exports.get(
        "csv",
        max_age_s=settings.export_max_age_s,
        pieces=lambda: service.csv_rows(model, time.time()),
        join=service.csv_table,
    )
    return _export(request, export, CSV, age_s, "points.csv", query.download)


def _export(
    request: Request, export: service.Export, media_type: str, age_s: float, filename: str, download: bool
) -> Response:
    """An export, gzipped as built if the client takes it; 304 when the client holds it."""
    settings: SearchSettings = request.app.state.settings
    headers = {
        "ETag": export.etag,
        "Cache-Control": f"public, max-age={settings.export_max_age_s}",
        "Vary": "Accept-Encoding",
        "X-Data-Age": str(int(age_s)),
        "Content-Disposition": f'{"attachment" if download else "inline"}; filename="{filename}"',
    }
    if request.headers.get("if-none-match", "").strip() in (export.etag, "*"):
        return Response(status_code=304, headers=headers)
    if "gzip" in request.headers.get("accept-encoding", ""):
        return Response(export.gzipped, media_type=media_type, headers={**headers, "Content-Encoding": "gzip"})
    return Response(export.body, media_type=media_type, headers=headers)


def _document(request: Request, document: dict[str, object]) -> Response:
    """A small OGC API JSON document with a strong ETag of its bytes."""
    body = orjson.dumps(document)
    settings: SearchSettings = request.app.state.settings
    return answer(request, body, etag=f'"{zlib.crc32(body):08x}"', max_age_s=settings.cache_max_age_s)


def _base(request: Request) -> str:
    return str(request.base_url).rstrip("/")


@ogc.get(
    "/",
    summary="OGC API landing page",
    response_model=None,
    responses={
        200: {"model": LandingPage, "description": "Links to the API definition, conformance and data."},
        **problems(400),
    },
    openapi_extra=query_parameters(OgcQuery),
)
async def ogc_landing_page(request: Request) -> Response:
    """Where OGC API clients (QGIS, GDAL, OWSLib) start."""
    parse_query(request, OgcQuery, status=400)
    return _document(request, service.landing_page(_base(request)))


@ogc.get(
    "/conformance",
    summary="OGC API conformance classes",
    response_model=None,
    responses={200: {"model": Conformance, "description": "Core and GeoJSON."}, **problems(400)},
    openapi_extra=query_parameters(OgcQuery),
)
async def ogc_conformance(request: Request) -> Response:
    """The OGC API – Features classes this API implements."""
    parse_query(request, OgcQuery, status=400)
    return _document(request, service.conformance())


@ogc.get(
    "/collections",
    summary="OGC API collections",
    response_model=None,
    responses={200: {"model": Collections, "description": "The points collection."}, **problems(400)},
    openapi_extra=query_parameters(OgcQuery),
)
async def ogc_collections(request: Request) -> Response:
    """The one collection: points."""
    parse_query(request, OgcQuery, status=400)
    base = _base(request)
    model: ReadModel = request.app.state.read_model
    document = {
        "links": [{"href": f"{base}/v1/ogc/collections", "rel": "self", "type": "application/json"}],
        "collections": [service.collection(base, model.extent())],
    }
    return _document(request, document)


@ogc.get(
    "/collections/points",
    summary="OGC API points collection",
    response_model=None,
    responses={200: {"model": Collection, "description": "Its extent and links."}, **problems(400)},
    openapi_extra=query_parameters(OgcQuery),
)
async def ogc_points_collection(request: Request) -> Response:
    """The points collection: its extent and where its items are."""
    parse_query(request, OgcQuery, status=400)
    model: ReadModel = request.app.state.read_model
    return _document(request, service.collection(_base(request), model.extent()))


@ogc.get(
    "/collections/points/items",
    summary="OGC API points",
    response_model=None,
    response_class=GeoJSONResponse,
    responses={**_geojson_response("A page of points, ordered by id, with a next link."), **problems(400)},
    openapi_extra=query_parameters(ItemsQuery),
)
async def ogc_points(request: Request) -> Response:
    """A page of points as GeoJSON: within bbox, matching the filters; numberMatched counts every page."""
    query = parse_query(request, ItemsQuery, status=400)
    settings: SearchSettings = request.app.state.settings
    if query.limit > settings.max_page_limit:
        raise HTTPException(400, f"query.limit: must be at most {settings.max_page_limit}")
    age_s, now = data_age(request), time.time()
    filters = catalog.filters_of(query, now=now, open_max_age_s=settings.open_max_age_s)
    url = request.url

    def next_url(after: str) -> str:
        return str(url.include_query_params(after=after))

    body, parts = service.items_page(
        request.app.state.read_model,
        filters=filters,
        box=query.box(),
        after=query.after,
        limit=query.limit,
        now=now,
        self_url=str(url),
        next_url=next_url,
    )
    etag = weak_etag(zlib.crc32(url.query.encode()), *parts)
    return answer(request, body, etag=etag, max_age_s=settings.cache_max_age_s, data_age_s=age_s, media_type=GEOJSON)


@ogc.get(
    "/collections/points/items/{feature_id}",
    summary="OGC API point",
    response_model=None,
    response_class=GeoJSONResponse,
    responses={**_geojson_response("The point as a GeoJSON Feature."), **problems(400, 404)},
    openapi_extra=query_parameters(OgcQuery),
)
async def ogc_point(feature_id: FeatureId, request: Request) -> Response:
    """One point, unless hidden or retired."""
    parse_query(request, OgcQuery, status=400)
    settings: SearchSettings = request.app.state.settings
    model: ReadModel = request.app.state.read_model
    age_s = data_age(request)
    slot = model.slot_of(feature_id.lower())
    if slot is None or not model.visible(slot):
        raise HTTPException(404, f"no point {feature_id}")
    base = _base(request)
    links = [
        {"href": str(request.url), "rel": "self", "type": GEOJSON, "title": "This point"},
        {"href": f"{base}/v1/ogc/collections/points", "rel": "collection", "type": "application/json"},
    ]
    body = service.feature(model, slot, time.time())[:-1] + b',"links":' + orjson.dumps(links) + b"}"
    etag = weak_etag(model.records[slot].tag)
    return answer(request, body, etag=etag, max_age_s=settings.cache_max_age_s, data_age_s=age_s, media_type=GEOJSON)
