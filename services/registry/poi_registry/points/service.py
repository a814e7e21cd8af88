"""Registering, reading, changing, retiring and listing points: each change, its history and its event together."""

import base64
import binascii
import hashlib
import json
import uuid
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

import asyncpg
from pydantic_core import to_json

from poi_registry import data, events
from poi_registry.oblasts.extents import extents
from poi_registry.points.models import (
    OPERATIONAL_FIELDS,
    ListFilters,
    PointCreate,
    PrivatePoint,
    PublicPoint,
    StoredPoint,
)
from poi_shared import db, outbox
from poi_shared.auth import Principal, Role
from poi_shared.contracts import POINT_REGISTERED, POINT_RESTORED, POINT_RETIRED, POINT_UPDATED, Visibility
from poi_shared.visibility import public_place

CODE_FIELD = "code"


class PointNotFound(Exception):
    """No such point, or none the caller may know of."""


class NotAllowed(Exception):
    """The caller's roles or scope do not allow this."""


class Misplaced(Exception):
    """The coordinates cannot belong to the KATOTTH code's oblast."""


class VersionMismatch(Exception):
    """The point changed since the version the client holds."""

    def __init__(self, current: int) -> None:
        super().__init__(f"the point is at version {current}")
        self.current = current


class IdempotencyKeyReused(Exception):
    """The same idempotency key came with a different request."""


def stored_point(row: asyncpg.Record | dict[str, Any]) -> StoredPoint:
    """A row of points as the stored point (its schedule is JSON text in the row)."""
    values = dict(row)
    if isinstance(values["schedule"], str):
        values["schedule"] = json.loads(values["schedule"])
    return StoredPoint.model_validate(values)


def manages(caller: Principal | None, point: StoredPoint) -> bool:
    """Whether the caller may see the point's private view: its operator, its area's coordinator, or admin."""
    return caller is not None and caller.operates(point.id, point.katotth)


def private_view(point: StoredPoint, caller: Principal | None) -> PrivatePoint:
    """The point for those who manage it; the private contact only for its coordinators and admins."""
    return PrivatePoint(
        **point.model_dump(exclude={"contact_phone", "retired_at"}),
        retired=point.retired_at is not None,
        retired_at=point.retired_at,
        contact_phone=point.contact_phone if caller is not None and caller.coordinates(point.katotth) else None,
    )


def public_view(point: StoredPoint) -> PublicPoint:
    """The point for the public, through the shared visibility policy (the caller must be allowed to know of it)."""
    place = public_place(events.point_state(point))
    assert place is not None, "a hidden point has no public view"
    fields = point.model_dump(include=set(PublicPoint.model_fields) - {"view", "exact_location", "retired"})
    fields.update(
        lat=place.lat,
        lon=place.lon,
        address_uk=place.address_uk,
        address_en=place.address_en,
        exact_location=place.exact,
        retired=point.retired_at is not None,
    )
    return PublicPoint(**fields)


def view_for(point: StoredPoint, caller: Principal | None) -> PrivatePoint | PublicPoint:
    """The view the caller has of the point (the caller must be allowed to know of it)."""
    return private_view(point, caller) if manages(caller, point) else public_view(point)


def knows_of(caller: Principal | None, point: StoredPoint) -> bool:
    """Hidden points exist only for those who manage them."""
    return point.effective_visibility != Visibility.hidden or manages(caller, point)


def check_place(*, lat: float, lon: float, katotth: str) -> None:
    """Misplaced unless the coordinates lie within the code's oblast (with its margin)."""
    reason = extents().misplaced(lat=lat, lon=lon, katotth=katotth)
    if reason is not None:
        raise Misplaced(reason)


def fingerprint(payload: PointCreate) -> str:
    """What identifies a create request's content, whatever its JSON spelling."""
    return hashlib.sha256(payload.model_dump_json().encode()).hexdigest()


def storage_values(values: dict[str, Any]) -> dict[str, Any]:
    """Fields in their JSON form as the points table takes them (the schedule as JSON text)."""
    return {name: data.schedule_json(value) if name == "schedule" else value for name, value in values.items()}


def history_entry(
    point: StoredPoint, *, action: str, changed_by: str, changes: list[dict[str, Any]], reason: str | None = None
) -> tuple[Any, ...]:
    """A history record of the point's current version."""
    return (
        point.id,
        point.version,
        action,
        changed_by,
        point.updated_at,
        reason,
        to_json(changes).decode(),  # pydantic's serializer: an import writes thousands of these
    )


def registration_changes(point: StoredPoint) -> list[dict[str, Any]]:
    """A new point's fields as changes from nothing."""
    values = point.model_dump(mode="json", include={CODE_FIELD, *data.POINT_FIELDS, "effective_visibility"})
    return [{"field": name, "old": None, "new": value} for name, value in values.items() if value not in (None, [])]


def differences(old: StoredPoint, new: StoredPoint, fields: Collection[str]) -> list[dict[str, Any]]:
    """What changed between two versions, field by field, in JSON form."""
    before = old.model_dump(mode="json", include=set(fields))
    after = new.model_dump(mode="json", include=set(fields))
    return [{"field": f, "old": before[f], "new": after[f]} for f in sorted(fields) if before[f] != after[f]]


async def register_point(
    pool: asyncpg.Pool,
    *,
    payload: PointCreate,
    caller: Principal,
    namespace: str,
    idempotency_key: str | None,
    idempotency_ttl_s: float,
) -> tuple[StoredPoint, bool]:
    """Store the point, its history and its registered event together; returns it and whether it is a replay.

    With an idempotency key, a repeat of the same request returns the first result; the key with another request
    is IdempotencyKeyReused.
    """
    if not caller.coordinates(payload.katotth):
        raise NotAllowed(f"your account may not register points in {payload.katotth}")
    check_place(lat=payload.lat, lon=payload.lon, katotth=payload.katotth)
    async with db.connection(pool) as conn, conn.transaction():
        if idempotency_key is not None:
            digest = fingerprint(payload)
            claimed = await data.claim_idempotency_key(
                conn, subject=caller.subject, key=idempotency_key, fingerprint=digest, ttl_s=idempotency_ttl_s
            )
            if not claimed:
                first = await data.get_idempotency_key(conn, subject=caller.subject, key=idempotency_key)
                assert first is not None and first["response"] is not None
                if first["fingerprint"] != digest:
                    raise IdempotencyKeyReused(
                        "this Idempotency-Key came with another request body; use a new key for a new point"
                    )
                return StoredPoint.model_validate_json(first["response"]), True
        values = storage_values(payload.model_dump(mode="json"))
        point = stored_point(await data.insert_point(conn, point_id=uuid.uuid4(), values=values))
        await events.emit(conn, namespace=namespace, event_type=POINT_REGISTERED, point=point)
        entry = history_entry(
            point, action="registered", changed_by=caller.subject, changes=registration_changes(point)
        )
        await data.insert_history(conn, [entry])
        if idempotency_key is not None:
            await data.store_idempotent_response(
                conn, subject=caller.subject, key=idempotency_key, response=point.model_dump_json()
            )
    outbox.committed()
    return point, False


async def get_point(pool: asyncpg.Pool, *, point_id: uuid.UUID) -> StoredPoint | None:
    """The point's current state, retired or not, or None."""
    async with db.connection(pool) as conn:
        row = await data.get_point(conn, point_id)
    return stored_point(row) if row else None


def _check_version(point: StoredPoint, expected: Collection[int] | None) -> None:
    """VersionMismatch unless the point is at one of the expected versions (None: any)."""
    if expected is not None and point.version not in expected:
        raise VersionMismatch(point.version)


def _may_change(caller: Principal, point: StoredPoint, fields: Collection[str]) -> None:
    """NotAllowed unless the caller may change these fields of the point."""
    if caller.coordinates(point.katotth):
        return
    if Role.operator in caller.roles and point.id in caller.points:
        beyond = sorted(set(fields) - OPERATIONAL_FIELDS)
        if beyond:
            raise NotAllowed(
                f"operators may change only {', '.join(sorted(OPERATIONAL_FIELDS))}; not {', '.join(beyond)}"
            )
        return
    raise NotAllowed(f"your account may not change point {point.id}")


async def _locked_point(conn: asyncpg.Connection, caller: Principal | None, point_id: uuid.UUID) -> StoredPoint:
    """The point, locked for the transaction; PointNotFound if it does not exist for the caller."""
    row = await data.get_point(conn, point_id, for_update=True)
    if row is None:
        raise PointNotFound(point_id)
    point = stored_point(row)
    if not knows_of(caller, point):
        raise PointNotFound(point_id)
    return point


async def update_point(
    pool: asyncpg.Pool,
    *,
    point_id: uuid.UUID,
    changes: dict[str, Any],
    caller: Principal,
    expected_versions: Collection[int] | None,
    namespace: str,
) -> StoredPoint:
    """Apply the changes as the next version with its history and updated event; nothing if nothing changes."""
    async with db.connection(pool) as conn, conn.transaction():
        point = await _locked_point(conn, caller, point_id)
        _may_change(caller, point, changes)
        if "katotth" in changes and not caller.coordinates(changes["katotth"]):
            raise NotAllowed(f"your account may not move points to {changes['katotth']}")
        _check_version(point, expected_versions)
        wanted = point.model_copy(update=changes)
        if {"lat", "lon", "katotth"} & set(changes):
            check_place(lat=wanted.lat, lon=wanted.lon, katotth=wanted.katotth)
        current = point.model_dump(mode="json", include=set(changes))
        requested = wanted.model_dump(mode="json", include=set(changes))
        changed = {name: value for name, value in requested.items() if current[name] != value}
        if not changed:
            return point
        new = stored_point(await data.update_point(conn, point_id=point.id, values=storage_values(changed)))
        await events.emit(conn, namespace=namespace, event_type=POINT_UPDATED, point=new)
        diff = differences(point, new, {*changed, "effective_visibility"})
        await data.insert_history(conn, [history_entry(new, action="updated", changed_by=caller.subject, changes=diff)])
    outbox.committed()
    return new


async def set_retired(
    pool: asyncpg.Pool,
    *,
    point_id: uuid.UUID,
    retired: bool,
    caller: Principal,
    expected_versions: Collection[int] | None,
    namespace: str,
) -> StoredPoint:
    """Retire or restore the point as its next version, with history and event; nothing if it already is."""
    async with db.connection(pool) as conn, conn.transaction():
        point = await _locked_point(conn, caller, point_id)
        if not caller.coordinates(point.katotth):
            raise NotAllowed(f"your account may not {'retire' if retired else 'restore'} point {point.id}")
        _check_version(point, expected_versions)
        if (point.retired_at is not None) == retired:
            return point
        new = stored_point(await data.set_retired(conn, point_id=point.id, retired=retired))
        event_type, action = (POINT_RETIRED, "retired") if retired else (POINT_RESTORED, "restored")
        await events.emit(conn, namespace=namespace, event_type=event_type, point=new)
        change = {"field": "retired", "old": not retired, "new": retired}
        entry = history_entry(new, action=action, changed_by=caller.subject, changes=[change])
        await data.insert_history(conn, [entry])
    outbox.committed()
    return new


def encode_cursor(code: str) -> str:
    """An opaque cursor for the page after the point with this code."""
    return base64.urlsafe_b64encode(json.dumps({"after": code}).encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> str:
    """The code a cursor continues after; ValueError for one this registry did not give."""
    try:
        decoded = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (binascii.Error, UnicodeDecodeError, json.JSONDecodeError):
        raise ValueError("not a cursor this registry gave; pass next_cursor as it came") from None
    if not isinstance(decoded, dict) or not isinstance(decoded.get("after"), str):
        raise ValueError("not a cursor this registry gave; pass next_cursor as it came")
    return decoded["after"]


@dataclass(frozen=True)
class Page:
    """One page of a list."""

    points: list[StoredPoint]
    total: int
    next_cursor: str | None


async def list_points(
    pool: asyncpg.Pool, *, filters: ListFilters, caller: Principal | None, cursor: str | None, limit: int
) -> Page:
    """A page of points in code order; hidden ones only for those who manage them (admins see all)."""
    after = decode_cursor(cursor) if cursor else None
    coordinator = caller is not None and Role.coordinator in caller.roles
    operator = caller is not None and Role.operator in caller.roles
    async with db.connection(pool) as conn:
        rows, total = await data.list_points(
            conn,
            after_code=after,
            limit=limit + 1,  # one more tells whether a next page exists
            katotth=filters.katotth,
            category=filters.category.value if filters.category else None,
            services=[s.value for s in filters.services],
            visibility=filters.visibility.value if filters.visibility else None,
            lifecycle=filters.lifecycle.value,
            changed_since=filters.changed_since,
            sees_hidden=caller is not None and Role.admin in caller.roles,
            managed_katotth=list(caller.katotth) if coordinator and caller else [],
            managed_points=list(caller.points) if operator and caller else [],
        )
    points = [stored_point(row) for row in rows[:limit]]
    next_cursor = encode_cursor(points[-1].code) if len(rows) > limit and points else None
    return Page(points, total, next_cursor)


async def point_history(
    pool: asyncpg.Pool, *, point_id: uuid.UUID, caller: Principal, before: int | None, limit: int
) -> tuple[list[dict[str, Any]], int | None]:
    """A point's versions, newest first, for its coordinators and admins; and the `before` of the next page."""
    async with db.connection(pool) as conn:
        row = await data.get_point(conn, point_id)
        if row is None:
            raise PointNotFound(point_id)
        point = stored_point(row)
        if not caller.coordinates(point.katotth):
            if not knows_of(caller, point):
                raise PointNotFound(point_id)
            raise NotAllowed(f"only coordinators of {point.katotth} and admins may read the point's history")
        rows = await data.get_history(conn, point_id=point_id, before=before, limit=limit + 1)
    entries = [{**dict(r), "changes": json.loads(r["changes"])} for r in rows[:limit]]
    return entries, entries[-1]["version"] if len(rows) > limit else None


async def prune_idempotency_keys(pool: asyncpg.Pool, *, ttl_s: float) -> int:
    """Forget idempotency keys older than their time to live."""
    async with db.connection(pool) as conn:
        return await data.prune_idempotency_keys(conn, ttl_s=ttl_s)
