"""HTTP routes for status reports and public reads of current status.

Responses are serialised once, from the status as stored, and sent as they are (documented by response_model).
A report's common case is answered by QuickReports before the router (see there); the route answers the rest.
"""

import json
import re
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Depends, Header, HTTPException, Query, Request, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from poi_shared.auth import CurrentPrincipal, TokenVerifier, forbid
from poi_shared.errors import invalid
from poi_shared.openapi import problems
from poi_status.dependencies import Known, Pool, Redis, Reports, Settings
from poi_status.reports import service
from poi_status.reports.models import REPORT_MAX_BYTES, PublicStatus, PublicStatuses, StatusReport

router = APIRouter(tags=["status"])
IDEMPOTENCY_KEY_PATTERN = r"^[\x21-\x7E]{1,128}$"


async def report_body_limit(request: Request) -> None:
    """413 for a report larger than a report can be (the app's own limit is much larger)."""
    declared = request.headers.get("content-length", "")
    if (declared.isdigit() and int(declared) > REPORT_MAX_BYTES) or len(await request.body()) > REPORT_MAX_BYTES:
        raise HTTPException(413, f"a status report may hold at most {REPORT_MAX_BYTES} bytes")


@router.post(
    "/v1/points/{point_id}/status",
    status_code=201,
    response_model=PublicStatus,
    summary="Report a point's status",
    responses={
        **problems(404, 409),
        201: {
            "description": "The point's status after the report.",
            "headers": {
                "Idempotent-Replayed": {
                    "description": "`true` when this answers a retry of a report already applied.",
                    "schema": {"type": "string", "enum": ["true"]},
                }
            },
        },
    },
    dependencies=[Depends(report_body_limit)],
)
async def report_status(
    point_id: UUID,
    report: StatusReport,
    writer: Reports,
    caller: CurrentPrincipal,
    idempotency_key: Annotated[
        str | None,
        Header(
            alias="Idempotency-Key",
            pattern=IDEMPOTENCY_KEY_PATTERN,
            description="Any unique string (e.g. a UUID) per report: a retry with the same key is applied once and "
            "answered as the first attempt was (with `Idempotent-Replayed: true`). Kept for 24 hours.",
        ),
    ] = None,
) -> Response:
    """The point's operator (or its area's coordinator, or an admin) says how the point is doing right now."""
    try:
        recorded = await writer.record(point_id=point_id, report=report, caller=caller, idempotency_key=idempotency_key)
    except service.PointNotFound as exc:
        raise HTTPException(404, str(exc)) from exc
    except service.NotAllowed as exc:
        raise forbid(str(exc)) from exc
    except service.PointRetired as exc:
        raise HTTPException(409, str(exc)) from exc
    except service.KeyReused as exc:
        raise invalid(("header", "Idempotency-Key"), str(exc), "idempotency_key_reused") from exc
    except service.InvalidReport as exc:
        raise invalid(exc.location, exc.message) from exc
    except service.Contended as exc:
        raise HTTPException(503, str(exc), headers={"Retry-After": "1"}) from exc
    headers = {"Idempotent-Replayed": "true"} if recorded.replayed else None
    body = service.public_json(point_id, recorded.state, now=datetime.now(UTC))
    return Response(body, status_code=201, media_type="application/json", headers=headers)


@router.get(
    "/v1/points/{point_id}/status",
    response_model=PublicStatus,
    summary="Read a point's current status",
    responses=problems(404),
)
async def read_status(
    point_id: UUID, pool: Pool, redis_client: Redis, directory: Known, settings: Settings
) -> Response:
    """Public: the last confirmed status and its age, or unknown if the point never had one."""
    found = await service.public_statuses(
        pool,
        redis_client,
        directory,
        point_ids=[point_id],
        namespace=settings.namespace,
        cache_ttl_s=settings.cache_ttl_s,
    )
    if point_id not in found:
        raise HTTPException(404, f"no point {point_id}")
    return Response(
        service.public_json(point_id, found[point_id], now=datetime.now(UTC)), media_type="application/json"
    )


@router.get("/v1/status/points", response_model=PublicStatuses, summary="Read the current status of many points")
async def read_statuses(
    pool: Pool,
    redis_client: Redis,
    directory: Known,
    settings: Settings,
    ids: Annotated[list[UUID], Query(min_length=1, description="Point ids, repeated: ?ids=…&ids=… (100 at most).")],
) -> Response:
    """Public: the current status of each point asked for; unknown, hidden and retired ones are listed as missing."""
    if len(ids) > settings.max_ids:
        raise invalid(("query", "ids"), f"at most {settings.max_ids} ids at once", "too_long")
    wanted = list(dict.fromkeys(ids))
    found = await service.public_statuses(
        pool, redis_client, directory, point_ids=wanted, namespace=settings.namespace, cache_ttl_s=settings.cache_ttl_s
    )
    now = datetime.now(UTC)
    items = b",".join(service.public_json(p, found[p], now=now) for p in wanted if p in found)
    missing = json.dumps([str(p) for p in wanted if p not in found]).encode()
    return Response(b'{"items":[%s],"missing":%s}' % (items, missing), media_type="application/json")


_HEX = "[0-9a-fA-F]"
_REPORT_PATH = re.compile(
    rf"^/v1/points/({_HEX}{{8}}-{_HEX}{{4}}-{_HEX}{{4}}-{_HEX}{{4}}-{_HEX}{{12}}|{_HEX}{{32}})/status$"
)
_IDEMPOTENCY_KEY = re.compile(IDEMPOTENCY_KEY_PATTERN)
Quick = tuple[int, list[tuple[bytes, bytes]], bytes]


class QuickReports:
    """ASGI middleware (innermost) answering a report's common case without the router, FastAPI's parameters or a
    Response: at the rates reports come in, that machinery costs more than the report itself.

    It takes a POST to the report route with a JSON body within the report limit, a valid bearer token and a valid
    Idempotency-Key (or none), parsed as the route parses them, and a report the writer records; for anything else
    (a bad or odd request, a token to fetch keys for, any error of the writer, which then wrote nothing) the request,
    body included, goes on to the route, which answers with its own checks and problem+json. So both paths give the
    same answers, and the route stays what OpenAPI documents.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._route: Any = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        matched = _REPORT_PATH.match(scope["path"]) if scope["type"] == "http" and scope["method"] == "POST" else None
        if matched is None:
            await self.app(scope, receive, send)
            return
        given = _report_headers(scope)
        if given is None:
            await self.app(scope, receive, send)
            return
        body, received, error = await _read_body(receive, REPORT_MAX_BYTES)
        quick = await _quick_report(scope, matched.group(1), body, *given) if body is not None else None
        if quick is None:
            await self.app(scope, _replaying(received, error, receive), send)
            return
        scope["route"] = self._route or self._find_route(scope)  # what the router would set: metrics use it
        status, headers, content = quick
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": content})

    def _find_route(self, scope: Scope) -> Any:
        self._route = next(
            (r for r in scope["app"].routes if getattr(r, "path", None) == "/v1/points/{point_id}/status"), None
        )
        return self._route


def _report_headers(scope: Scope) -> tuple[str, str | None] | None:
    """The bearer token and Idempotency-Key of a report in the common case (a JSON body within the report limit,
    one key), else None."""
    token = key = content_type = None
    for name, value in scope["headers"]:
        if name == b"authorization" and token is None:
            scheme, _, token = value.decode("latin-1").partition(" ")
            if scheme.lower() != "bearer":
                return None
        elif name == b"idempotency-key":
            if key is not None:
                return None
            key = value.decode("latin-1")
        elif name == b"content-type" and content_type is None:
            content_type = value
        elif name == b"content-length" and (not value.isdigit() or int(value) > REPORT_MAX_BYTES):
            return None
    if (
        not token
        or content_type is None
        or content_type.split(b";")[0].strip().lower() != b"application/json"
        or (key is not None and not _IDEMPOTENCY_KEY.match(key))
    ):
        return None
    return token.strip(), key


async def _read_body(receive: Receive, limit: int) -> tuple[bytes | None, list[Message], Exception | None]:
    """The whole body (None when it exceeds limit, the client left or reading failed), the messages read, and the
    error reading raised (an outer limit's refusal), all to give on to the route."""
    received: list[Message] = []
    size = 0
    while True:
        try:
            message = await receive()
        except Exception as exc:
            return None, received, exc
        received.append(message)
        if message["type"] != "http.request":
            return None, received, None
        size += len(message.get("body", b""))
        if size > limit:
            return None, received, None
        if not message.get("more_body", False):
            return b"".join(m.get("body", b"") for m in received), received, None


def _replaying(received: list[Message], error: Exception | None, receive: Receive) -> Callable[[], Awaitable[Message]]:
    """A receive that gives the messages already read (then the error reading raised, if any), then reads on."""
    pending = list(received)

    async def replay() -> Message:
        if pending:
            return pending.pop(0)
        if error is not None:
            raise error
        return await receive()

    return replay


async def _quick_report(scope: Scope, point: str, body: bytes, token: str, key: str | None) -> Quick | None:
    """Record the report as the route would and answer it; None to leave the request to the route."""
    app = scope["app"]
    verifier: TokenVerifier = app.state.token_verifier
    if verifier.fetches_keys:
        return None
    try:
        point_id = UUID(point)
        caller = verifier.verify(token)
        report = StatusReport.model_validate(json.loads(body))  # as FastAPI validates a body
        recorded = await app.state.report_writer.record(
            point_id=point_id, report=report, caller=caller, idempotency_key=key
        )
    except Exception:  # bad input, or the writer's error (it then wrote nothing): the route answers it
        return None
    content = service.public_json(point_id, recorded.state, now=datetime.now(UTC))
    headers = [(b"content-length", b"%d" % len(content)), (b"content-type", b"application/json")]
    if recorded.replayed:
        headers.append((b"idempotent-replayed", b"true"))
    return 201, headers, content
