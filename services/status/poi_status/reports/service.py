"""Recording reports and reading current status.

A report is merged into the current status and stored as its next version, with its history row, its visitors
and its events, in one transaction; Redis is written after the commit (see poi_status.cache).

Events: `changed` when anything a reader sees changed (state, a service's availability, power, fuel, low fuel,
internet, occupancy, capacity, note), and `low_fuel` beside it when the fuel has just dropped under the threshold.
A report that changes nothing still confirms the status: its version carries the new reported_at, and it is
published as a `changed` event too when the last published reported_at is at least CONFIRM_EVENT_INTERVAL_S old,
so search can say "confirmed N min ago" without an event for every tap on "still open". Versions not published
leave gaps in the versions consumers see.
"""

import hashlib
import json
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import asyncpg
import redis.asyncio as redis

from poi_shared import db, outbox
from poi_shared.auth import Principal
from poi_shared.contracts import OpenState, StatusState
from poi_status import cache, data, events
from poi_status.points.service import Directory
from poi_status.reports.models import OVERCROWDING, PublicStatus, StatusReport
from poi_status.settings import StatusSettings

log = logging.getLogger(__name__)
# A report is written again when another change came first; more than this many in a row is not normal.
WRITE_ATTEMPTS = 5
# What a reader sees besides the services: a change in any of these is published at once.
CONTENT_FIELDS = ("state", "power", "fuel_hours", "low_fuel", "internet", "occupancy", "capacity", "note")


class PointNotFound(Exception):
    """Status knows no such point (or, for public reads, the public may not see it)."""


class NotAllowed(Exception):
    """The caller may not report on the point."""


class PointRetired(Exception):
    """The registry retired the point."""


class KeyReused(Exception):
    """An Idempotency-Key came back with a different report."""


class Contended(Exception):
    """The point's status changed under every attempt to write the report."""


class InvalidReport(Exception):
    """The report cannot apply to this point; location names the part of the body."""

    def __init__(self, location: tuple[str, ...], message: str) -> None:
        super().__init__(message)
        self.location = location
        self.message = message


@dataclass(frozen=True)
class Recorded:
    """The status a report made, and whether it was an earlier attempt's answer given again."""

    state: StatusState
    replayed: bool


@dataclass(frozen=True)
class Merged:
    """A report merged into the current status: the next version's values, and what to publish."""

    values: dict[str, Any]
    publish: bool
    low_fuel_began: bool


async def record_report(
    pool: asyncpg.Pool,
    redis_client: redis.Redis,
    *,
    point_id: UUID,
    report: StatusReport,
    caller: Principal,
    idempotency_key: str | None,
    settings: StatusSettings,
) -> Recorded:
    """Check the caller may report on the point, then store the report as the next version, once per key.

    Two statements and no transaction: a read, then one statement that writes everything only if the status is
    still the version read. Another change in between (a report, an area switch, the stale sweep) makes it write
    nothing, and the report is merged again into what is current then.
    """
    known_at = time.monotonic()  # before the commit, so the cached entry expires within the TTL of any later one
    request_hash = hashlib.sha256(report.model_dump_json(exclude_unset=True).encode()).digest()
    async with db.connection(pool) as conn:
        for _ in range(WRITE_ATTEMPTS):
            current = await data.read_for_report(conn, point_id=point_id, caller=caller.subject, key=idempotency_key)
            if current is None:
                raise PointNotFound(f"no point {point_id} (a newly registered point takes a moment to arrive)")
            if not caller.operates(point_id, current["katotth"]):
                raise NotAllowed(f"your account may not report on point {point_id}")
            if current["request_version"] is not None:
                if current["request_hash"] != request_hash:
                    raise KeyReused("this Idempotency-Key was used for a different report; use a new key")
                row = await data.get_version(conn, point_id, current["request_version"])
                assert row is not None
                return Recorded(events.status_state(row), replayed=True)
            if current["retired"]:
                raise PointRetired(f"point {point_id} is retired")
            merged = merge_report(
                current,
                report,
                caller=caller.subject,
                now=datetime.now(UTC),
                low_fuel_hours=settings.low_fuel_hours,
                confirm_event_interval_s=settings.confirm_event_interval_s,
            )
            state = events.status_state({**merged.values, "point_id": point_id, "version": current["version"] + 1})
            messages = (
                events.report_messages(settings.namespace, state, low_fuel_began=merged.low_fuel_began)
                if merged.publish
                else []
            )
            saved = await data.save_report(
                conn,
                point_id=point_id,
                read_version=current["version"],
                values=merged.values,
                published=merged.publish,
                served=report.served,
                katotth=current["katotth"],
                request=(caller.subject, idempotency_key, request_hash) if idempotency_key is not None else None,
                messages=messages,
            )
            if saved is not None:
                break
        else:
            raise Contended(f"point {point_id}'s status kept changing while this report was written; send it again")
    if messages:
        outbox.committed()
    await cache.cache_committed(redis_client, settings.namespace, [state], expires_at=known_at + settings.cache_ttl_s)
    return Recorded(state, replayed=False)


def merge_report(
    current: Mapping[str, Any],
    report: StatusReport,
    *,
    caller: str,
    now: datetime,
    low_fuel_hours: float,
    confirm_event_interval_s: float,
) -> Merged:
    """The next version: the report over the current status, with full and low fuel derived.

    current is the locked row with what status knows of the point (capacity, offered services).
    """
    given = report.model_fields_set
    offered = set(current["offered"])
    capacity: int | None = current["point_capacity"]
    for service in report.services:
        if service.value not in offered:
            listed = ", ".join(sorted(offered)) or "none"
            raise InvalidReport(
                ("body", "services", service.value), f"the point does not offer {service.value} (it offers: {listed})"
            )
    if report.occupancy is not None and capacity is not None and report.occupancy > OVERCROWDING * capacity:
        raise InvalidReport(
            ("body", "occupancy"),
            f"{report.occupancy} people is more than {OVERCROWDING} times the point's capacity of {capacity}",
        )

    old_services: dict[str, Any] = json.loads(current["services"])
    # Services the point no longer offers are dropped; those reported are confirmed now.
    services = {name: s for name, s in old_services.items() if name in offered}
    for service, available in report.services.items():
        services[service.value] = {"available": available, "confirmed_at": now.isoformat()}

    values: dict[str, Any] = {f: current[f] for f in ("power", "fuel_hours", "internet", "occupancy", "note")}
    for name in ("power", "internet"):
        if name in given:
            value = getattr(report, name)
            values[name] = value.value if value is not None else None
    for name in ("fuel_hours", "occupancy"):
        if name in given:
            values[name] = getattr(report, name)
    if "note" in given:
        values["note"] = report.note or None  # an empty note clears it, as null does

    state = report.state or current["state"]
    if state == OpenState.unknown:
        raise InvalidReport(
            ("body", "state"),
            "the point's status is unknown (never reported, or not confirmed for too long): "
            "say whether it is open, closed, full or standby",
        )
    occupancy = values["occupancy"]
    if capacity is not None and occupancy is not None:
        if state == OpenState.open and occupancy >= capacity:
            state = OpenState.full
        elif (
            state == OpenState.full and report.state != OpenState.full and "occupancy" in given and occupancy < capacity
        ):
            state = OpenState.open  # places freed up

    first = current["version"] == 0
    low_fuel = values["fuel_hours"] is not None and values["fuel_hours"] < low_fuel_hours
    values.update(
        state=str(state),
        previous_state=None if first else current["state"],
        cause="report",
        services=json.dumps(services),
        low_fuel=low_fuel,
        capacity=capacity,
        reported_by=caller,
        reported_at=now,
    )
    changed = (
        first
        or any(values[f] != current[f] for f in CONTENT_FIELDS)
        or _availability(services) != _availability(old_services)
    )
    values["changed_at"] = now if changed else current["changed_at"]
    last_published = current["published_reported_at"]
    confirmation_due = last_published is None or (now - last_published).total_seconds() >= confirm_event_interval_s
    return Merged(values, publish=changed or confirmation_due, low_fuel_began=low_fuel and not current["low_fuel"])


def _availability(services: Mapping[str, Any]) -> dict[str, bool]:
    """Which services work, without when that was confirmed."""
    return {name: bool(s["available"]) for name, s in services.items()}


async def public_statuses(
    pool: asyncpg.Pool,
    redis_client: redis.Redis,
    directory: Directory,
    *,
    point_ids: Sequence[UUID],
    namespace: str,
    cache_ttl_s: float,
) -> dict[UUID, StatusState | None]:
    """The current status of those points the public may see (None: never had one), from Redis or else PostgreSQL."""
    visible = await directory.public(pool, point_ids)
    found: dict[UUID, StatusState | None] = {}
    try:
        found.update(await cache.read_cached(redis_client, namespace, visible))
    except redis.RedisError as exc:
        log.warning("redis unavailable, reading status from postgresql: %r", exc)
    missing = [p for p in visible if p not in found]
    if missing:
        known_at = time.monotonic()
        async with db.connection(pool) as conn:
            rows = await data.get_statuses(conn, missing)
        read = [events.status_state(r) for r in rows if r["version"] > 0]
        found.update({r["point_id"]: None for r in rows if r["version"] == 0})
        found.update({s.point_id: s for s in read})
        try:
            await cache.cache_many(redis_client, namespace, read, expires_at=known_at + cache_ttl_s)
        except redis.RedisError as exc:  # a miss stays a miss: the next read goes to PostgreSQL again
            log.warning("cannot cache %d statuses: %r", len(read), exc)
    return {p: found[p] for p in visible if p in found}


def public_json(point_id: UUID, state: StatusState | None, *, now: datetime) -> bytes:
    """What the public sees of a status (PublicStatus): everything but who reported, and how old the last
    confirmation is; JSON serialised once from the status, which responses and the feed send as it is."""
    if state is None:
        return PublicStatus(point_id=point_id, version=0, state=OpenState.unknown).model_dump_json().encode()
    age_s = max(0, int((now - state.reported_at).total_seconds()))
    document = state.model_dump_json(exclude={"reported_by"}).encode()
    return b'%s,"age_s":%d}' % (document[:-1], age_s)


async def forget_idempotency_keys(pool: asyncpg.Pool, *, older_than_s: float, batch: int = 5000) -> int:
    """Forget idempotency keys older than the retention, in bounded batches; returns how many."""
    forgotten = 0
    while True:
        async with db.connection(pool) as conn:
            count = await data.prune_requests(conn, older_than_s=older_than_s, batch=batch)
        forgotten += count
        if count < batch:
            return forgotten
