"""Public subscription routes: no token, but every request is counted per number, per address and in total."""

import logging
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, HTTPException, Path, Request, Response

from poi_notify import throttle
from poi_notify.phones.service import InvalidPhone, mask, parse, phone_hash
from poi_notify.settings import NotifySettings
from poi_notify.subscriptions import service
from poi_notify.subscriptions.models import (
    Accepted,
    Confirmed,
    ConfirmRequest,
    SubscribeRequest,
    SubscriptionState,
    UnsubscribeRequest,
)
from poi_shared.errors import invalid
from poi_shared.openapi import RETRY_AFTER, problems

log = logging.getLogger(__name__)
router = APIRouter(prefix="/v1/subscriptions", tags=["subscriptions"])
HOUR_S, MINUTE_S = 3600, 60
THROTTLED: dict[int | str, dict[str, Any]] = {
    429: {"description": "Too Many Requests: retry after Retry-After seconds.", "headers": {"Retry-After": RETRY_AFTER}}
}


def _number(raw: str) -> str:
    """E.164, or a 422 on body.phone saying why the number cannot subscribe."""
    try:
        return parse(raw)
    except InvalidPhone as exc:
        raise invalid(("body", "phone"), str(exc), "phone_refused") from exc


async def _count(request: Request, action: str, hashed: str, per_phone: int, per_ip: int, per_minute: int) -> None:
    """Count the request per number, per client address and in total; 429 past any limit (503 if Redis is down)."""
    settings: NotifySettings = request.app.state.settings
    address = request.client.host if request.client else "unknown"
    limits = [
        throttle.Limit("ip", address, per_ip, HOUR_S),
        throttle.Limit("all", "all", per_minute, MINUTE_S),
        throttle.Limit("phone", hashed, per_phone, HOUR_S),
    ]
    try:
        await throttle.count(request.app.state.redis, settings.namespace, action, limits)
    except throttle.Throttled as exc:
        log.warning("%s throttled per %s (number %s)", action, exc.scope, hashed[:12])
        raise HTTPException(
            429,
            f"too many {action} requests (limit per {exc.scope}); try again later",
            headers={"Retry-After": str(exc.retry_after_s)},
        ) from exc


@router.post(
    "",
    status_code=202,
    response_model=Accepted,
    summary="Subscribe a mobile number to a point or an area",
    responses={**problems(409), **THROTTLED},
)
async def subscribe(request: Request, body: SubscribeRequest) -> Accepted:
    """Stores the subscription and sends a 6-digit code by SMS; nothing else reaches the number until it confirms."""
    settings: NotifySettings = request.app.state.settings
    assert settings.phone_key is not None
    e164 = _number(body.phone)
    if body.area is not None and body.area.radius_m > settings.area_max_radius_m:
        raise invalid(("body", "area", "radius_m"), f"at most {settings.area_max_radius_m} m", "less_than_equal")
    hashed = phone_hash(settings.phone_key, e164)
    await _count(
        request,
        "subscribe",
        hashed,
        settings.subscribe_per_phone_per_hour,
        settings.subscribe_per_ip_per_hour,
        settings.subscribe_per_minute,
    )
    area = body.area
    target = (
        service.Target(point_id=body.point_id)
        if area is None
        else service.Target(lat=area.lat, lon=area.lon, radius_m=area.radius_m)
    )
    try:
        id = await service.subscribe(
            request.app.state.pool,
            settings,
            phone_hash=hashed,
            e164=e164,
            language=body.language.value,
            latin=body.latin,
            target=target,
            services=[s.value for s in body.services],
        )
    except service.UnknownPoint as exc:
        # One answer for unknown, retired and hidden points: it must not tell which hidden points exist.
        raise invalid(
            ("body", "point_id"),
            f"no public point {body.point_id} (a point registered a moment ago may take a few seconds to be known)",
            "unknown_point",
        ) from exc
    except service.NumberStopped as exc:
        raise HTTPException(409, "this number sent STOP: text START to the service's number first") from exc
    except service.TooManySubscriptions as exc:
        raise HTTPException(
            409, f"this number has {settings.max_subscriptions_per_phone} subscriptions already"
        ) from exc
    return Accepted(id=id, phone=mask(e164), code_expires_in_s=settings.code_ttl_s)


@router.post(
    "/confirm",
    response_model=Confirmed,
    summary="Confirm with the code the number received",
    responses={**problems(409), **THROTTLED},
)
async def confirm(request: Request, body: ConfirmRequest) -> Confirmed:
    """The code confirms the number's pending subscriptions (or removes them all, for an unsubscribe code)."""
    return await _redeem(request, body, purpose=None)


async def _redeem(request: Request, body: ConfirmRequest, *, purpose: str | None) -> Confirmed:
    """Count the try, use the code (of that purpose, if given), say what it did; 409 if it is not the live one."""
    settings: NotifySettings = request.app.state.settings
    assert settings.phone_key is not None
    hashed = phone_hash(settings.phone_key, _number(body.phone))
    await _count(
        request,
        "confirm",
        hashed,
        settings.confirm_per_phone_per_hour,
        settings.confirm_per_ip_per_hour,
        settings.confirm_per_minute,
    )
    try:
        redeemed = await service.confirm(
            request.app.state.pool, settings, phone_hash=hashed, code=body.code, purpose=purpose
        )
    except service.CodeRefused as exc:
        detail = (
            f"wrong code: {exc.tries_left} tries left"
            if exc.tries_left
            else "no valid code for this number: it expired, was used or had too many wrong tries; ask for a new one"
        )
        raise HTTPException(409, detail) from exc
    if redeemed.purpose == "subscribe":
        return Confirmed(status="subscribed", subscriptions=redeemed.subscriptions)
    return Confirmed(status="unsubscribed", subscriptions=redeemed.subscriptions)


@router.post(
    "/unsubscribe",
    response_model=Confirmed | Accepted,
    summary="Unsubscribe a number: ask for a code, then give it",
    responses={
        202: {"model": Accepted, "description": "A code is on its way (if the number has subscriptions)."},
        **problems(409),
        **THROTTLED,
    },
)
async def unsubscribe(request: Request, response: Response, body: UnsubscribeRequest) -> Confirmed | Accepted:
    """Without a code: 202, and the number gets one by SMS. With it: every subscription of the number is removed.

    Texting STOP to the service's number stops every SMS at once, with no code.
    """
    settings: NotifySettings = request.app.state.settings
    assert settings.phone_key is not None
    e164 = _number(body.phone)
    hashed = phone_hash(settings.phone_key, e164)
    if body.code is None:
        await _count(
            request,
            "subscribe",
            hashed,
            settings.subscribe_per_phone_per_hour,
            settings.subscribe_per_ip_per_hour,
            settings.subscribe_per_minute,
        )
        # The same answer whether or not the number has subscriptions: nobody learns who is subscribed.
        await service.request_unsubscribe(request.app.state.pool, settings, phone_hash=hashed)
        response.status_code = 202
        return Accepted(phone=mask(e164), code_expires_in_s=settings.code_ttl_s)
    # Only an unsubscribe code removes: a pending subscription's code sent here confirms nothing either.
    return await _redeem(request, ConfirmRequest(phone=body.phone, code=body.code), purpose="unsubscribe")


@router.get(
    "/{subscription_id}",
    response_model=SubscriptionState,
    summary="A subscription's state",
    responses=problems(404),
)
async def subscription_state(
    request: Request, subscription_id: Annotated[UUID, Path(description="The id the subscribe request returned.")]
) -> SubscriptionState:
    """Pending until its number confirms, then active; stopped while the number has sent STOP. The number is masked."""
    found = await service.state(request.app.state.pool, subscription_id)
    if found is None:
        raise HTTPException(404, "no such subscription (an unconfirmed one is forgotten after a day)")
    return SubscriptionState.model_validate(found)
