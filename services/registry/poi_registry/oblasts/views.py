"""HTTP routes for oblast policies."""

from typing import Annotated

from fastapi import APIRouter, HTTPException, Path

from poi_registry.oblasts import service
from poi_registry.oblasts.models import OblastPolicy, PolicyApplied, PolicyChange
from poi_registry.points.service import NotAllowed
from poi_registry.points.views import Pool, Settings
from poi_shared.auth import CurrentPrincipal, forbid
from poi_shared.openapi import problems

router = APIRouter(prefix="/v1/oblast-policies", tags=["oblasts"])


@router.get("", response_model=list[OblastPolicy], summary="Oblast visibility policies")
async def oblast_policies(pool: Pool, caller: CurrentPrincipal) -> list[OblastPolicy]:
    """Every oblast and the visibility its policy forces on its points (public: none); admins and coordinators."""
    try:
        policies = await service.oblast_policies(pool, caller=caller)
    except NotAllowed as exc:
        raise forbid(str(exc)) from None
    return [OblastPolicy.model_validate(p) for p in policies]


@router.put("/{oblast}", response_model=PolicyApplied, summary="Set an oblast's policy", responses=problems(404))
async def set_oblast_policy(
    oblast: Annotated[str, Path(pattern=r"^UA\d{2}$", description="KATOTTH oblast code, e.g. UA14.")],
    payload: PolicyChange,
    pool: Pool,
    settings: Settings,
    caller: CurrentPrincipal,
) -> PolicyApplied:
    """Force at least this visibility on every point of the oblast (admins); each point whose effective
    visibility changes gets a new version and an updated event."""
    try:
        applied = await service.set_oblast_policy(
            pool,
            oblast=oblast,
            visibility=payload.visibility,
            caller=caller,
            namespace=settings.namespace,
            batch_size=settings.policy_batch_size,
        )
    except NotAllowed as exc:
        raise forbid(str(exc)) from None
    except service.UnknownOblast:
        raise HTTPException(404, f"no oblast {oblast}") from None
    return PolicyApplied.model_validate(applied)
