"""Admin routes for coordinator contacts (who gets ops alerts of a region)."""

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, HTTPException, Query, Request, Response

from poi_notify import data
from poi_notify.contacts import service
from poi_notify.contacts.models import Contact, ContactCreate, ContactPage
from poi_notify.phones.service import InvalidPhone
from poi_shared.auth import CurrentPrincipal, Principal, Role, forbid
from poi_shared.contracts import KATOTTH_PREFIX_PATTERN
from poi_shared.errors import invalid
from poi_shared.openapi import problems

router = APIRouter(prefix="/v1/contacts", tags=["contacts"])


def _admin(caller: Principal) -> None:
    if not caller.has(Role.admin):
        raise forbid("only an admin manages coordinator contacts")


@router.post("", status_code=201, response_model=Contact, summary="Register a coordinator contact")
async def add_contact(body: ContactCreate, request: Request, response: Response, caller: CurrentPrincipal) -> Contact:
    """Admin: the number gets ops alerts (stale points, low fuel) of the region's points; a repeat is harmless."""
    _admin(caller)
    settings = request.app.state.settings
    try:
        contact = await service.add_contact(
            request.app.state.pool,
            key=settings.phone_key,
            phone=body.phone,
            katotth_prefix=body.katotth_prefix,
            language=body.language,
        )
    except InvalidPhone as exc:
        raise invalid(("body", "phone"), str(exc)) from exc
    response.headers["Location"] = f"/v1/contacts/{contact['id']}"
    return Contact(**contact)


@router.get("", response_model=ContactPage, summary="List coordinator contacts")
async def list_contacts(
    request: Request,
    caller: CurrentPrincipal,
    katotth_prefix: Annotated[str | None, Query(pattern=KATOTTH_PREFIX_PATTERN)] = None,
    after: UUID | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> ContactPage:
    """Admin: contacts in id order, numbers masked; optionally those of regions within a KATOTTH prefix."""
    _admin(caller)
    rows = await data.list_contacts(request.app.state.pool, katotth_prefix=katotth_prefix, after=after, limit=limit)
    items = [Contact(**service.view(r)) for r in rows]
    return ContactPage(items=items, next_after=items[-1].id if len(items) == limit else None)


@router.delete("/{contact_id}", status_code=204, summary="Remove a coordinator contact", responses=problems(404))
async def remove_contact(contact_id: UUID, request: Request, caller: CurrentPrincipal) -> Response:
    """Admin: the number gets no more ops alerts for that region (already queued ones still go)."""
    _admin(caller)
    if not await service.remove_contact(request.app.state.pool, contact_id):
        raise HTTPException(404, f"no contact {contact_id}")
    return Response(status_code=204)
