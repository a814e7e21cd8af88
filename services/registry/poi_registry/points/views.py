"""HTTP routes for points."""

from typing import Annotated
from uuid import UUID

import asyncpg
from fastapi import APIRouter, Depends, HTTPException, Request, Response

from poi_registry.points import service
from poi_registry.points.models import PointCreate
from poi_shared.auth import CurrentPrincipal, OptionalPrincipal, Principal, forbid
from poi_shared.contracts import PointState
from poi_shared.openapi import problems
from poi_shared.visibility import public_place

router = APIRouter(prefix="/v1/points", tags=["points"])


def get_pool(request: Request) -> asyncpg.Pool:
    """The registry's database pool."""
    return request.app.state.pool


Pool = Annotated[asyncpg.Pool, Depends(get_pool)]


@router.post("", status_code=201, response_model=PointState, summary="Register a point")
async def register_point(
    payload: PointCreate, request: Request, response: Response, pool: Pool, caller: CurrentPrincipal
) -> PointState:
    """Coordinators register points inside their area; admins anywhere."""
    if not caller.coordinates(payload.katotth):
        raise forbid(f"your account may not register points in {payload.katotth}")
    state = await service.register_point(pool, payload=payload, namespace=request.app.state.settings.namespace)
    response.headers["Location"] = f"/v1/points/{state.id}"
    return state


@router.get("/{point_id}", response_model=PointState, summary="Read a point", responses=problems(404))
async def read_point(point_id: UUID, pool: Pool, caller: OptionalPrincipal) -> PointState:
    """Public read: hidden points only for those who manage them, coarse ones at the settlement for the public."""
    state = await service.get_point(pool, point_id=point_id)
    if state is None:
        raise HTTPException(404, f"no point {point_id}")
    if _manages(caller, state):
        return state
    place = public_place(state)
    if place is None:
        raise HTTPException(404, f"no point {point_id}")
    return state.model_copy(
        update={"lat": place.lat, "lon": place.lon, "address_uk": place.address_uk, "address_en": place.address_en}
    )


def _manages(caller: Principal | None, state: PointState) -> bool:
    """Whether the caller may see the point's exact location."""
    return caller is not None and caller.operates(state.id, state.katotth)
