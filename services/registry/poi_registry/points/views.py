"""HTTP routes for points: register, read, change, retire, restore, list, history."""

import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Annotated
from uuid import UUID

import asyncpg
from fastapi import APIRouter, Depends, Header, HTTPException, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from pydantic import Field

from poi_registry.points import service
from poi_registry.points.models import (
    History,
    Lifecycle,
    ListFilters,
    PointCreate,
    PointPage,
    PointPatch,
    PrivatePoint,
    PublicPoint,
)
from poi_registry.settings import RegistrySettings
from poi_shared.auth import CurrentPrincipal, OptionalPrincipal, Principal, forbid
from poi_shared.contracts import KATOTTH_PREFIX_PATTERN, PointCategory, Service, Visibility
from poi_shared.errors import invalid
from poi_shared.models import Iso8601
from poi_shared.openapi import problems

router = APIRouter(prefix="/v1/points", tags=["points"])

IDEMPOTENCY_KEY_PATTERN = r"^[\x21-\x7E]{1,255}$"
IF_MATCH_PATTERN = r"^[\x20-\x7E]{1,1000}$"
ENTITY_TAG = re.compile(r'^(W/)?"([^"]*)"$')
CURSOR_PATTERN = r"^[A-Za-z0-9_-]{1,400}$"

PointView = Annotated[PrivatePoint | PublicPoint, Field(discriminator="view")]


def get_pool(request: Request) -> asyncpg.Pool:
    """The registry's database pool."""
    return request.app.state.pool


def get_settings(request: Request) -> RegistrySettings:
    """The registry's settings."""
    return request.app.state.settings


Pool = Annotated[asyncpg.Pool, Depends(get_pool)]
Settings = Annotated[RegistrySettings, Depends(get_settings)]
IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        pattern=IDEMPOTENCY_KEY_PATTERN,
        description="Any unique string (e.g. a UUID): a retried create with the same key and body returns the "
        "first result instead of making another point. Keys are per account and kept for a day.",
    ),
]
IfMatch = Annotated[
    str | None,
    Header(
        alias="If-Match",
        pattern=IF_MATCH_PATTERN,
        description='The ETag of the version you read, e.g. "3" (or * for any).',
    ),
]


def etag(version: int) -> str:
    """A point version's strong entity tag."""
    return f'"{version}"'


def expected_versions(if_match: str | None, *, required: bool) -> set[int] | None:
    """The versions an If-Match header allows (None: any); 428 when required and missing."""
    if if_match is None:
        if required:
            raise HTTPException(428, 'send If-Match with the ETag of the version you read (e.g. If-Match: "3")')
        return None
    tags = [tag.strip() for tag in if_match.split(",")]
    if "*" in tags:
        return None
    versions = set()
    for tag in tags:
        match = ENTITY_TAG.match(tag)
        # A weak tag never matches under If-Match's strong comparison (RFC 9110 13.1.1).
        if match and not match.group(1) and match.group(2).isdigit():
            versions.add(int(match.group(2)))
    return versions


@contextmanager
def domain_errors(*, place_fields: Sequence[str] = ("lat", "lon")) -> Iterator[None]:
    """Turn the points service's refusals into HTTP errors."""
    try:
        yield
    except service.PointNotFound as exc:
        raise HTTPException(404, f"no point {exc}") from None
    except service.NotAllowed as exc:
        raise forbid(str(exc)) from None
    except service.VersionMismatch as exc:
        raise HTTPException(
            412,
            f"the point changed since you read it (now version {exc.current}); read it again and retry",
            headers={"ETag": etag(exc.current)},
        ) from None
    except service.Misplaced as exc:
        raise RequestValidationError(
            [{"loc": ("body", name), "msg": str(exc), "type": "outside_oblast"} for name in place_fields]
        ) from None
    except service.IdempotencyKeyReused as exc:
        raise RequestValidationError(
            [{"loc": ("header", "Idempotency-Key"), "msg": str(exc), "type": "idempotency_key_reused"}]
        ) from None


def _with_etag(response: Response, version: int) -> None:
    response.headers["ETag"] = etag(version)


@router.post("", status_code=201, response_model=PrivatePoint, summary="Register a point")
async def register_point(
    payload: PointCreate,
    request: Request,
    response: Response,
    pool: Pool,
    settings: Settings,
    caller: CurrentPrincipal,
    idempotency_key: IdempotencyKey = None,
) -> PrivatePoint:
    """Coordinators register points inside their area, admins anywhere; the registry gives the code (NN-000123).

    With an Idempotency-Key, a retry returns the first result (header Idempotent-Replayed: true).
    """
    with domain_errors():
        point, replayed = await service.register_point(
            pool,
            payload=payload,
            caller=caller,
            namespace=settings.namespace,
            idempotency_key=idempotency_key,
            idempotency_ttl_s=settings.idempotency_ttl_s,
        )
    response.headers["Location"] = f"/v1/points/{point.id}"
    if replayed:
        response.headers["Idempotent-Replayed"] = "true"
    _with_etag(response, point.version)
    return service.private_view(point, caller)


@router.get("", response_model=PointPage, summary="List points")
async def list_points(
    response: Response,
    pool: Pool,
    settings: Settings,
    caller: OptionalPrincipal,
    katotth: Annotated[
        str | None, Query(pattern=KATOTTH_PREFIX_PATTERN, description="A KATOTTH prefix: oblast, raion, hromada.")
    ] = None,
    category: Annotated[PointCategory | None, Query()] = None,
    service_: Annotated[list[Service] | None, Query(alias="service", description="Offers all of these.")] = None,
    visibility: Annotated[Visibility | None, Query(description="Effective visibility.")] = None,
    lifecycle: Annotated[Lifecycle, Query()] = Lifecycle.active,
    changed_since: Annotated[datetime | None, Iso8601, Query(description="Changed at or after this time.")] = None,
    cursor: Annotated[str | None, Query(pattern=CURSOR_PATTERN, description="next_cursor of the last page.")] = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 100,
) -> PointPage:
    """Points in code order, each in the view you have of it: hidden ones only for those who manage them."""
    if limit > settings.list_max_limit:
        raise invalid(("query", "limit"), f"at most {settings.list_max_limit}", "less_than_equal")
    if changed_since is not None and changed_since.tzinfo is None:
        raise invalid(("query", "changed_since"), "give a time zone, e.g. 2026-01-19T00:00:00Z", "timezone_aware")
    filters = ListFilters(
        katotth=katotth,
        category=category,
        services=tuple(sorted(set(service_ or []))),
        visibility=visibility,
        lifecycle=lifecycle,
        changed_since=changed_since,
    )
    try:
        page = await service.list_points(pool, filters=filters, caller=caller, cursor=cursor, limit=limit)
    except ValueError as exc:
        raise invalid(("query", "cursor"), str(exc)) from None
    response.headers["Vary"] = "Authorization"
    return PointPage(
        items=[service.view_for(point, caller) for point in page.points], total=page.total, next_cursor=page.next_cursor
    )


@router.get("/{point_id}", response_model=PointView, summary="Read a point", responses=problems(404))
async def read_point(point_id: UUID, response: Response, pool: Pool, caller: OptionalPrincipal) -> PointView:
    """Public view for everyone (hidden points are 404); the private view for those who manage the point."""
    point = await service.get_point(pool, point_id=point_id)
    if point is None or not service.knows_of(caller, point):
        raise HTTPException(404, f"no point {point_id}")
    _with_etag(response, point.version)
    response.headers["Vary"] = "Authorization"
    return service.view_for(point, caller)


@router.patch(
    "/{point_id}",
    response_model=PrivatePoint,
    summary="Change a point",
    responses=problems(404, 412, 428),
)
async def update_point(
    point_id: UUID,
    payload: PointPatch,
    response: Response,
    pool: Pool,
    settings: Settings,
    caller: CurrentPrincipal,
    if_match: IfMatch = None,
) -> PrivatePoint:
    """Coordinators and admins change any field; operators only schedule, services and phones of their points.

    Needs If-Match with the ETag you read (428 without, 412 when the point changed since). A change that changes
    nothing makes no version.
    """
    changes = payload.changes()
    versions = expected_versions(if_match, required=True)
    with domain_errors(place_fields=[f for f in ("lat", "lon", "katotth") if f in changes]):
        point = await service.update_point(
            pool,
            point_id=point_id,
            changes=changes,
            caller=caller,
            expected_versions=versions,
            namespace=settings.namespace,
        )
    _with_etag(response, point.version)
    return service.private_view(point, caller)


async def _set_retired(
    point_id: UUID,
    retired: bool,
    response: Response,
    pool: asyncpg.Pool,
    settings: RegistrySettings,
    caller: Principal,
    if_match: str | None,
) -> PrivatePoint:
    with domain_errors():
        point = await service.set_retired(
            pool,
            point_id=point_id,
            retired=retired,
            caller=caller,
            expected_versions=expected_versions(if_match, required=False),
            namespace=settings.namespace,
        )
    _with_etag(response, point.version)
    return service.private_view(point, caller)


@router.post("/{point_id}/retire", response_model=PrivatePoint, summary="Retire a point", responses=problems(404, 412))
async def retire_point(
    point_id: UUID,
    response: Response,
    pool: Pool,
    settings: Settings,
    caller: CurrentPrincipal,
    if_match: IfMatch = None,
) -> PrivatePoint:
    """Take a point out of service (coordinators of its area, admins): it stays readable and leaves search."""
    return await _set_retired(point_id, True, response, pool, settings, caller, if_match)


@router.post(
    "/{point_id}/restore", response_model=PrivatePoint, summary="Restore a point", responses=problems(404, 412)
)
async def restore_point(
    point_id: UUID,
    response: Response,
    pool: Pool,
    settings: Settings,
    caller: CurrentPrincipal,
    if_match: IfMatch = None,
) -> PrivatePoint:
    """Put a retired point back in service (coordinators of its area, admins)."""
    return await _set_retired(point_id, False, response, pool, settings, caller, if_match)


@router.get("/{point_id}/history", response_model=History, summary="A point's history", responses=problems(404))
async def point_history(
    point_id: UUID,
    pool: Pool,
    caller: CurrentPrincipal,
    before: Annotated[int | None, Query(ge=1, le=2**62, description="next_before of the last page.")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> History:
    """Who changed what and when, with old and new values, newest first: coordinators of its area and admins."""
    with domain_errors():
        entries, next_before = await service.point_history(
            pool, point_id=point_id, caller=caller, before=before, limit=limit
        )
    return History.model_validate({"point_id": point_id, "items": entries, "next_before": next_before})
