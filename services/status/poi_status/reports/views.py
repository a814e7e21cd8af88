"""HTTP routes for status reports and public reads of current status.

Responses are serialised once, from the status as stored, and sent as they are (documented by response_model).
"""

import json
from datetime import UTC, datetime
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Depends, Header, HTTPException, Query, Request, Response

from poi_shared.auth import CurrentPrincipal, forbid
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
