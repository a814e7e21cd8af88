"""HTTP routes for integrators' webhooks: register, list, switch, remove, see deliveries, replay."""

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, HTTPException, Query, Request, Response

from poi_notify import data
from poi_notify.webhooks import service
from poi_notify.webhooks.delivery import UnsafeURL
from poi_notify.webhooks.models import (
    Delivery,
    DeliveryPage,
    DeliveryState,
    NewWebhook,
    RegisteredWebhook,
    Replayed,
    Webhook,
    WebhookChange,
    WebhookList,
)
from poi_shared.auth import CurrentPrincipal, Principal, Role, forbid
from poi_shared.errors import invalid
from poi_shared.models import INT64_MAX
from poi_shared.openapi import problems

router = APIRouter(prefix="/v1/webhooks", tags=["webhooks"])


def _integrator(caller: Principal) -> str:
    """The caller's subject, which owns its webhooks; 403 unless it is an integrator."""
    if not caller.has(Role.integrator):
        raise forbid("only integrators may manage webhooks")
    return caller.subject


def _not_found() -> HTTPException:
    return HTTPException(404, "you have no webhook with this id")


@router.post(
    "", status_code=201, response_model=RegisteredWebhook, summary="Register a webhook", responses=problems(409)
)
async def register_webhook(request: Request, body: NewWebhook, caller: CurrentPrincipal) -> RegisteredWebhook:
    """Matching status events will be POSTed to the URL, signed with the secret returned (only) here."""
    owner = _integrator(caller)
    try:
        return await service.register(request.app.state.pool, request.app.state.settings, owner=owner, new=body)
    except UnsafeURL as exc:
        raise invalid(("body", "url"), str(exc), "unsafe_url") from None
    except service.AreaTooLarge as exc:
        raise invalid(("body", "area", "radius_m"), str(exc), "less_than_equal") from None
    except service.TooManyWebhooks as exc:
        raise HTTPException(409, str(exc)) from None


@router.get("", response_model=WebhookList, summary="Your webhooks")
async def list_webhooks(request: Request, caller: CurrentPrincipal) -> WebhookList:
    """The caller's webhooks, oldest first (without their secrets)."""
    rows = await data.list_webhooks(request.app.state.pool, _integrator(caller))
    return WebhookList(items=[service.webhook(r) for r in rows])


@router.get("/{webhook_id}", response_model=Webhook, summary="One of your webhooks", responses=problems(404))
async def get_webhook(request: Request, webhook_id: UUID, caller: CurrentPrincipal) -> Webhook:
    """One of the caller's webhooks."""
    row = await data.get_webhook(request.app.state.pool, owner=_integrator(caller), webhook_id=webhook_id)
    if row is None:
        raise _not_found()
    return service.webhook(row)


@router.patch("/{webhook_id}", response_model=Webhook, summary="Switch a webhook on or off", responses=problems(404))
async def change_webhook(request: Request, webhook_id: UUID, body: WebhookChange, caller: CurrentPrincipal) -> Webhook:
    """While off, matching events are not queued and queued deliveries wait; on again, they go out."""
    row = await data.set_webhook_enabled(
        request.app.state.pool, owner=_integrator(caller), webhook_id=webhook_id, enabled=body.enabled
    )
    if row is None:
        raise _not_found()
    return service.webhook(row)


@router.delete("/{webhook_id}", status_code=204, summary="Remove a webhook", responses=problems(404))
async def delete_webhook(request: Request, webhook_id: UUID, caller: CurrentPrincipal) -> Response:
    """The webhook and its deliveries are removed; nothing more is sent to it."""
    if not await data.delete_webhook(request.app.state.pool, owner=_integrator(caller), webhook_id=webhook_id):
        raise _not_found()
    return Response(status_code=204)


@router.get(
    "/{webhook_id}/deliveries", response_model=DeliveryPage, summary="A webhook's deliveries", responses=problems(404)
)
async def list_deliveries(
    request: Request,
    webhook_id: UUID,
    caller: CurrentPrincipal,
    state: DeliveryState | None = None,
    after_seq: Annotated[int, Query(ge=0, le=INT64_MAX)] = 0,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> DeliveryPage:
    """Deliveries in the order they were queued, optionally only those in one state (dead: the dead letters)."""
    pool = request.app.state.pool
    if await data.get_webhook(pool, owner=_integrator(caller), webhook_id=webhook_id) is None:
        raise _not_found()
    rows = await data.list_deliveries(
        pool, webhook_id=webhook_id, state=state.value if state else None, after_seq=after_seq, limit=limit
    )
    items = [_delivery(r) for r in rows]
    return DeliveryPage(items=items, next_after_seq=items[-1].seq if len(items) == limit else None)


@router.post(
    "/{webhook_id}/deliveries/replay-dead-letters",
    status_code=202,
    response_model=Replayed,
    summary="Send a webhook's dead letters again",
    responses=problems(404),
)
async def replay_dead_letters(request: Request, webhook_id: UUID, caller: CurrentPrincipal) -> Replayed:
    """Every dead delivery of the webhook is queued again from its first attempt (after you fixed the endpoint)."""
    pool = request.app.state.pool
    if await data.get_webhook(pool, owner=_integrator(caller), webhook_id=webhook_id) is None:
        raise _not_found()
    replayed = await data.replay_dead_deliveries(pool, webhook_id=webhook_id)
    if replayed:
        request.app.state.webhook_wake.set()
    return Replayed(replayed=replayed)


@router.post(
    "/{webhook_id}/deliveries/{delivery_id}/replay",
    status_code=202,
    response_model=Delivery,
    summary="Send one delivery again",
    responses=problems(404),
)
async def replay_delivery(request: Request, webhook_id: UUID, delivery_id: UUID, caller: CurrentPrincipal) -> Delivery:
    """The delivery is queued again from its first attempt, whatever its state (the same id, body and event)."""
    pool = request.app.state.pool
    if await data.get_webhook(pool, owner=_integrator(caller), webhook_id=webhook_id) is None:
        raise _not_found()
    row = await data.replay_delivery(pool, webhook_id=webhook_id, delivery_id=delivery_id)
    if row is None:
        raise HTTPException(404, "the webhook has no delivery with this id")
    request.app.state.webhook_wake.set()
    return _delivery(row)


def _delivery(row: object) -> Delivery:
    record = dict(row)  # type: ignore[call-overload]
    if record["state"] != DeliveryState.pending.value:
        record["next_attempt_at"] = None
    return Delivery(**record)
