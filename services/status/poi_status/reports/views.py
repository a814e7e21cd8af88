"""HTTP routes for status reports."""

from typing import Annotated
from uuid import UUID

import asyncpg
import redis.asyncio as redis
from fastapi import APIRouter, Depends, HTTPException, Request

from poi_shared.auth import CurrentPrincipal
from poi_shared.contracts import OpenState, StatusState
from poi_shared.openapi import problems
from poi_status.reports import service
from poi_status.reports.models import StatusReport, StatusView

router = APIRouter(prefix="/v1/points", tags=["status"])


def get_pool(request: Request) -> asyncpg.Pool:
    """The status database pool."""
    return request.app.state.pool


def get_cache(request: Request) -> redis.Redis:
    """The Redis client holding current status."""
    return request.app.state.redis


Pool = Annotated[asyncpg.Pool, Depends(get_pool)]
Cache = Annotated[redis.Redis, Depends(get_cache)]


@router.post(
    "/{point_id}/status",
    status_code=201,
    response_model=StatusView,
    summary="Report a point's status",
    responses=problems(404, 409),
)
async def report_status(
    point_id: UUID, report: StatusReport, request: Request, pool: Pool, cache: Cache, caller: CurrentPrincipal
) -> StatusView:
    """The point's operator (or its area's coordinator) says whether it is open."""
    state = await service.record_report(
        pool,
        cache,
        point_id=point_id,
        report=report,
        caller=caller,
        namespace=request.app.state.settings.namespace,
        cache_ttl_s=request.app.state.settings.cache_ttl_s,
    )
    return _view(state)


@router.get(
    "/{point_id}/status", response_model=StatusView, summary="Read a point's current status", responses=problems(404)
)
async def read_status(point_id: UUID, request: Request, pool: Pool, cache: Cache) -> StatusView:
    """Public: the last confirmed status, or unknown if the point never reported."""
    settings = request.app.state.settings
    state = await service.current_status(
        pool, cache, point_id=point_id, namespace=settings.namespace, cache_ttl_s=settings.cache_ttl_s
    )
    if state is not None:
        return _view(state)
    if not await service.is_known(pool, point_id=point_id):
        raise HTTPException(404, f"no point {point_id}")
    return StatusView(point_id=str(point_id), state=OpenState.unknown, version=0)


def _view(state: StatusState) -> StatusView:
    return StatusView(
        point_id=str(state.point_id),
        state=state.state,
        version=state.version,
        note=state.note,
        reported_at=state.reported_at.isoformat(),
    )
