"""HTTP routes to inspect what notify has observed (admin only)."""

from datetime import datetime
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel

from poi_notify import data
from poi_shared.auth import CurrentPrincipal, Role, forbid
from poi_shared.models import INT64_MAX

router = APIRouter(prefix="/v1/observations", tags=["observations"])


class Observation(BaseModel):
    """A status event notify has handled."""

    event_id: str
    point_id: UUID
    version: int
    state: str
    reported_at: datetime
    observed_at: datetime


class ObservationPage(BaseModel):
    """One page; pass next_after_version to get the next."""

    items: list[Observation]
    next_after_version: int | None


@router.get("", response_model=ObservationPage, summary="Status events observed for a point")
async def list_observations(
    request: Request,
    caller: CurrentPrincipal,
    point_id: UUID,
    after_version: Annotated[int, Query(ge=0, le=INT64_MAX)] = 0,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> ObservationPage:
    """Admins see which status events notify handled, in version order."""
    if not caller.has(Role.admin):
        raise forbid("only admins may inspect notify's observations")
    rows = await data.list_observations(
        request.app.state.pool, point_id=point_id, after_version=after_version, limit=limit
    )
    items = [Observation(**dict(r)) for r in rows]
    return ObservationPage(items=items, next_after_version=items[-1].version if len(items) == limit else None)
