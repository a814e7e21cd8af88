"""Admin routes issuing, listing and revoking integrator keys."""

from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Request, Response

from poi_search.keys import service
from poi_search.keys.models import KEY_ID_PATTERN, IssuedKey, KeyCreate, KeyList, KeyRecord, KeyView
from poi_shared.auth import CurrentPrincipal, Principal, Role, forbid
from poi_shared.openapi import problems

router = APIRouter(prefix="/v1/keys", tags=["integrator keys"])
KeyId = Annotated[str, Path(pattern=KEY_ID_PATTERN, description="The key's id.")]


def _admin(caller: Principal) -> None:
    if not caller.has(Role.admin):
        raise forbid("only an admin manages integrator keys")


@router.post("", status_code=201, response_model=IssuedKey, summary="Issue an integrator key")
async def issue_key(body: KeyCreate, request: Request, response: Response, caller: CurrentPrincipal) -> IssuedKey:
    """Admin: a new key, shown once; integrators send it as X-API-Key for a higher rate limit."""
    _admin(caller)
    record, key = await service.issue_key(
        request.app.state.keys_bucket, name=body.name, rate_limit=body.rate_limit, issued_by=caller.subject
    )
    response.headers["Location"] = f"/v1/keys/{record.id}"
    return IssuedKey(**_view(record).model_dump(), key=key)


@router.get("", response_model=KeyList, summary="List integrator keys")
async def list_keys(request: Request, caller: CurrentPrincipal) -> KeyList:
    """Admin: every key, active and revoked, without the keys themselves."""
    _admin(caller)
    return KeyList(items=[_view(r) for r in await service.list_keys(request.app.state.keys_bucket)])


@router.delete("/{key_id}", status_code=204, summary="Revoke an integrator key", responses=problems(404))
async def revoke_key(key_id: KeyId, request: Request, caller: CurrentPrincipal) -> Response:
    """Admin: the key stops working on every replica within moments."""
    _admin(caller)
    if await service.revoke_key(request.app.state.keys_bucket, key_id=key_id, revoked_by=caller.subject) is None:
        raise HTTPException(404, f"no integrator key {key_id}")
    return Response(status_code=204)


def _view(record: KeyRecord) -> KeyView:
    return KeyView.model_validate(record.model_dump(exclude={"key_sha256"}))
