"""HTTP routes for switching areas on and off."""

from fastapi import APIRouter

from poi_shared.auth import CurrentPrincipal, forbid
from poi_shared.contracts import AreaAction, OpenState, PointCategory
from poi_status.areas import service
from poi_status.areas.models import ActivateAreas, AreaOutcome, AreaSwitched, DeactivateAreas
from poi_status.dependencies import Pool, Redis, Settings

router = APIRouter(prefix="/v1/status/areas", tags=["areas"])


@router.post("/activate", response_model=AreaSwitched, summary="Open the on-blackout points of areas")
async def activate_areas(
    body: ActivateAreas, pool: Pool, redis_client: Redis, settings: Settings, caller: CurrentPrincipal
) -> AreaSwitched:
    """A blackout starts: every on-blackout point of the areas opens (or stands by); a repeat changes nothing."""
    return await _switch(
        AreaAction.activate, OpenState(body.state), body.katotth, body.category, pool, redis_client, settings, caller
    )


@router.post("/deactivate", response_model=AreaSwitched, summary="Close the on-blackout points of areas")
async def deactivate_areas(
    body: DeactivateAreas, pool: Pool, redis_client: Redis, settings: Settings, caller: CurrentPrincipal
) -> AreaSwitched:
    """The blackout is over: every on-blackout point of the areas closes; a repeat changes nothing."""
    return await _switch(
        AreaAction.deactivate, OpenState.closed, body.katotth, body.category, pool, redis_client, settings, caller
    )


async def _switch(
    action: AreaAction,
    state: OpenState,
    prefixes: list[str],
    category: PointCategory | None,
    pool: Pool,
    redis_client: Redis,
    settings: Settings,
    caller: CurrentPrincipal,
) -> AreaSwitched:
    try:
        results = await service.switch_areas(
            pool,
            redis_client,
            action=action,
            prefixes=prefixes,
            category=category,
            state=state,
            caller=caller,
            settings=settings,
        )
    except service.NotAllowed as exc:
        raise forbid(str(exc)) from exc
    return AreaSwitched(
        action=action,
        state=state,
        category=category,
        points_changed=sum(r.points_changed for r in results),
        areas=[AreaOutcome.model_validate(r, from_attributes=True) for r in results],
    )
