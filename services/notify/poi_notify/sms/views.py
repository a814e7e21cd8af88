"""Kannel's callbacks: inbound SMS (its sms-service get-url) and delivery reports (the dlr-url of each message).

Not public: only Kannel calls these, with the shared gateway token, or from loopback when no token is set.
"""

import hmac
import ipaddress
import logging
from typing import Annotated, Literal
from urllib.parse import parse_qsl
from uuid import UUID

from fastapi import APIRouter, HTTPException, Query, Request
from pydantic import BaseModel
from starlette.types import ASGIApp, Receive, Scope, Send

from poi_notify.phones.service import InvalidPhone, parse, phone_hash
from poi_notify.settings import NotifySettings
from poi_notify.sms import inbound, reports
from poi_shared.intake import API_CSP, SECURITY_HEADERS
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


def _is_gateway(settings: NotifySettings, host: str, token: str | None) -> bool:
    """The shared token, or a loopback caller when none is set."""
    if settings.gateway_token is not None:
        expected = settings.gateway_token.get_secret_value()
        return token is not None and hmac.compare_digest(token.encode(), expected.encode())
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _gateway_only(request: Request, token: str | None) -> None:
    """404 unless the caller is the gateway (the shared token, or loopback when none is set): hidden from others."""
    settings: NotifySettings = request.app.state.settings
    if _is_gateway(settings, request.client.host if request.client else "", token):
        return
    if settings.gateway_token is not None:
        raise HTTPException(404, "not found: only the SMS gateway may call this (wrong or missing token)")
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


DLR_PATH = "/v1/sms/dlr"
TAKEN_BODY = ReportTaken(taken=True).model_dump_json().encode()
TAKEN_HEADERS = [
    (b"content-type", b"application/json"),
    (b"content-length", str(len(TAKEN_BODY)).encode()),
    *SECURITY_HEADERS,
    API_CSP,
]


class DeliveryReportFastPath:
    """Takes a well-formed report from the gateway before the app's stack, with the route's exact answer (202).

    Kannel sends two reports a message: through routing, validation and every middleware they cost notify more than
    the sending itself. Anything else (a wrong token, a bad id or type, another method) goes on to the documented
    route, which answers it.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == DLR_PATH and scope["method"] == "GET":
            taken = self._take(scope)
            if taken:
                await send({"type": "http.response.start", "status": 202, "headers": TAKEN_HEADERS})
                await send({"type": "http.response.body", "body": TAKEN_BODY})
                return
        await self.app(scope, receive, send)

    @staticmethod
    def _take(scope: Scope) -> bool:
        """Take the report if the request is one the route would take; False to let the route answer it."""
        app_state = scope["app"].state  # Starlette sets scope["app"] before its middleware
        buffer, settings = getattr(app_state, "dlr_buffer", None), getattr(app_state, "settings", None)
        if buffer is None or settings is None:
            return False
        query = dict(parse_qsl(scope["query_string"].decode("latin-1")))
        if set(query) - {"id", "type", "token"}:
            return False
        try:
            id, dlr_type = UUID(query["id"]), int(query["type"])
        except (KeyError, ValueError):
            return False
        if not 0 <= dlr_type <= 255 or len(query.get("token", "")) > 200:
            return False
        client = scope.get("client")
        if not _is_gateway(settings, client[0] if client else "", query.get("token")):
            return False
        if len(buffer.pending) >= buffer.limit:
            return False  # the route answers 503
        reports.take(buffer, id=id, dlr_type=dlr_type)
        return True
