"""HTTP routes that query the read model."""

from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Request, Response
from pydantic import BaseModel, Field

from poi_search.catalog.readmodel import Hit, ReadModel
from poi_shared.contracts import OpenState, Service
from poi_shared.errors import invalid
from poi_shared.models import INT64_MAX

router = APIRouter(prefix="/v1/search", tags=["search"])


class StatusSummary(BaseModel):
    """The live status shown beside a point."""

    state: OpenState
    version: int
    reported_at: str | None


class NearestHit(BaseModel):
    """A point near the caller."""

    id: str
    name_uk: str
    name_en: str | None
    category: str
    lat: float
    lon: float
    address_uk: str
    address_en: str | None
    settlement: str
    katotth: str
    capacity: int
    services: list[str]
    distance_m: int
    status: StatusSummary


class NearestResult(BaseModel):
    """Points nearest first, and how old the data they come from may be."""

    items: list[NearestHit]
    count: int
    data_age_s: float = Field(
        description="Seconds since this replica last confirmed it held every event (also the X-Data-Age header, "
        "whole seconds). About a second normally; it grows while the broker is away."
    )


@router.get("/nearest", response_model=NearestResult, summary="Nearest points with their live status")
async def nearest(
    request: Request,
    response: Response,
    lat: Annotated[float, Query(ge=-90, le=90)],
    lon: Annotated[float, Query(ge=-180, le=180)],
    limit: Annotated[
        int, Query(ge=1, le=INT64_MAX, description="At most the configured maximum (50 by default).")
    ] = 10,
    radius_km: Annotated[float, Query(gt=0, description="At most the configured maximum.")] = 25.0,
    state: Annotated[OpenState | None, Query(description="Only points in this state.")] = None,
    service: Annotated[list[Service] | None, Query(description="Only points offering all of these.")] = None,
) -> NearestResult:
    """Public: the nearest visible points, coarse ones at their rounded location."""
    settings = request.app.state.settings
    if limit > settings.max_limit:
        raise invalid(("query", "limit"), f"must be at most {settings.max_limit}", "less_than_equal")
    if radius_km > settings.max_radius_km:
        raise invalid(("query", "radius_km"), f"must be at most {settings.max_radius_km:g}", "less_than_equal")
    data_age_s: float | None = request.app.state.data_age()
    if data_age_s is None:
        raise HTTPException(503, "search is still loading points", headers={"Retry-After": "2"})
    model: ReadModel = request.app.state.read_model
    hits = model.nearest(
        lat, lon, limit=limit, radius_m=radius_km * 1000, state=state, services=frozenset(service or ())
    )
    response.headers["X-Data-Age"] = str(int(data_age_s))
    return NearestResult(items=[_hit(h) for h in hits], count=len(hits), data_age_s=round(data_age_s, 1))


def _hit(hit: Hit) -> NearestHit:
    point, status = hit.point, hit.status
    return NearestHit(
        id=str(point.id),
        name_uk=point.name_uk,
        name_en=point.name_en,
        category=point.category.value,
        lat=hit.place.lat,
        lon=hit.place.lon,
        address_uk=hit.place.address_uk,
        address_en=hit.place.address_en,
        settlement=point.settlement,
        katotth=point.katotth,
        capacity=point.capacity,
        services=[s.value for s in point.services],
        distance_m=round(hit.distance_m),
        status=StatusSummary(
            state=status.state if status else OpenState.unknown,
            version=status.version if status else 0,
            reported_at=status.reported_at.isoformat() if status else None,
        ),
    )
