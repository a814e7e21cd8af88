"""Kannel's callbacks: inbound SMS (its sms-service get-url) and delivery reports (the dlr-url of each message).

Not public: only Kannel calls these, with the shared gateway token, or from loopback when no token is set.
"""

import hmac
import ipaddress
import logging
from typing import Annotated, Literal
from uuid import UUID

from fastapi import APIRouter, HTTPException, Query, Request
from pydantic import BaseModel

from poi_notify.phones.service import InvalidPhone, parse, phone_hash
from poi_notify.settings import NotifySettings
from poi_notify.sms import inbound, reports
from poi_shared.models import Line, Text
from poi_shared.openapi import problems

log = logging.getLogger(__name__)
router = APIRouter(prefix="/v1/sms", tags=["sms gateway"])
Token = Annotated[
    Line | None, Query(max_length=200, description="The shared gateway token (POI_NOTIFY_GATEWAY_TOKEN).")
]


class InboundHandled(BaseModel):
    """What notify did with an inbound SMS; any reply goes out through the outbox, not in this answer."""

    handled: Literal["stop", "start", "code", "lookup", "quiet", "ignored"]


class ReportTaken(BaseModel):
    """A delivery report taken: written with the others of the next few tens of milliseconds."""

    taken: bool


def _gateway_only(request: Request, token: str | None) -> None:
    """404 unless the caller is the gateway (the shared token, or loopback when none is set): hidden from others."""
    settings: NotifySettings = request.app.state.settings
    if settings.gateway_token is not None:
        expected = settings.gateway_token.get_secret_value()
        if token is not None and hmac.compare_digest(token.encode(), expected.encode()):
            return
        raise HTTPException(404, "not found: only the SMS gateway may call this (wrong or missing token)")
    host = request.client.host if request.client else ""
    try:
        if ipaddress.ip_address(host).is_loopback:
            return
    except ValueError:
        pass
    raise HTTPException(
        404, "not found: only the SMS gateway may call this (set POI_NOTIFY_GATEWAY_TOKEN to allow it remotely)"
    )


@router.get(
    "/inbound",
    response_model=InboundHandled,
    summary="An SMS from a resident, as Kannel's sms-service get-url delivers it",
    responses=problems(404),
)
async def inbound_sms(
    request: Request,
    sender: Annotated[Line, Query(alias="from", max_length=64, description="The sender's number (Kannel's %p).")],
    text: Annotated[Text, Query(max_length=1600, description="The message (Kannel's %a).")] = "",
    token: Token = None,
) -> InboundHandled:
    """STOP / СТОП stops every SMS to the number, START resumes them, a 6-digit code confirms; else a place lookup."""
    _gateway_only(request, token)
    settings: NotifySettings = request.app.state.settings
    assert settings.phone_key is not None
    try:
        e164 = parse(sender)
    except InvalidPhone:
        return InboundHandled(handled="ignored")  # a short code or a name: nothing can be answered
    handled = await inbound.handle(
        request.app.state.pool,
        request.app.state.redis,
        request.app.state.search_http,
        settings,
        phone_hash=phone_hash(settings.phone_key, e164),
        e164=e164,
        text=text,
    )
    return InboundHandled(handled=handled)


@router.get(
    "/dlr",
    status_code=202,
    response_model=ReportTaken,
    summary="A delivery report, as Kannel calls each message's dlr-url",
    responses=problems(404),
)
async def delivery_report(
    request: Request,
    id: Annotated[UUID, Query(description="The message's id (in the dlr-url notify gave).")],
    type: Annotated[int, Query(ge=0, le=255, description="Kannel's report type (%d): 1, 2, 4, 8 or 16.")],
    token: Token = None,
) -> ReportTaken:
    """Delivered (1) or not (2, 16) settles the message; 4 and 8 (queued, accepted by the SMSC) are only noted.

    Answered at once and written in batches (Kannel sends two a message and never retries one); a report naming no
    message is dropped when written.
    """
    _gateway_only(request, token)
    reports.take(request.app.state.dlr_buffer, id=id, dlr_type=type)
    return ReportTaken(taken=True)
