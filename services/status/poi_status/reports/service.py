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

import asyncio
import contextvars
import hashlib
import json
import logging
import time
from collections import deque
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
from poi_shared.envelope import OutgoingMessage
from poi_shared.errors import DEPENDENCY_ERRORS
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


@dataclass(eq=False)
class _Pending:
    """A report waiting for its batch: what it needs, the request's context (its events carry the request's
    trace), and where its answer goes."""

    point_id: UUID
    report: StatusReport
    caller: Principal
    key: str | None
    request_hash: bytes
    context: contextvars.Context
    answer: asyncio.Future[Recorded]
    attempts: int = 0
    alone: bool = False  # written in a batch of its own: its batch failed as a whole


@dataclass(frozen=True)
class _Write:
    """A report merged into its point's current status, ready for save_reports."""

    pending: _Pending
    row: dict[str, Any]
    state: StatusState
    messages: list[OutgoingMessage]


class ReportWriter:
    """Writes the reports of concurrent requests together: a batch is one read and one statement (one commit).

    Reports wait in arrival order; a batch takes at most one report per point and never a point another batch is
    writing, so the reports on one point apply one after the other, in order. A report whose point changed since
    it was read (another replica, an area switch, the stale sweep) is merged again in the next batch; every
    report is answered alone (a bad one fails only its own request). State: the queue and the batches in flight.
    """

    def __init__(self, pool: asyncpg.Pool, redis_client: redis.Redis, settings: StatusSettings) -> None:
        self._pool, self._redis, self._settings = pool, redis_client, settings
        self._queue: deque[_Pending] = deque()
        self._busy: set[UUID] = set()  # points of the batches in flight
        self._writing: set[asyncio.Task[None]] = set()

    async def record(
        self, *, point_id: UUID, report: StatusReport, caller: Principal, idempotency_key: str | None
    ) -> Recorded:
        """Check the caller may report on the point, then store the report as the next version, once per key."""
        pending = _Pending(
            point_id=point_id,
            report=report,
            caller=caller,
            key=idempotency_key,
            request_hash=hashlib.sha256(report.model_dump_json(exclude_unset=True).encode()).digest(),
            context=contextvars.copy_context(),
            answer=asyncio.get_running_loop().create_future(),
        )
        self._queue.append(pending)
        self._start_batches()
        return await pending.answer

    def _start_batches(self) -> None:
        """Start batches from the queue while fewer than the allowed number are in flight."""
        while self._queue and len(self._writing) < self._settings.report_batches_in_flight:
            batch = self._take()
            if not batch:
                return  # what waits is on points being written: their batch ends, then this runs again
            for pending in batch:
                self._busy.add(pending.point_id)
            task = asyncio.create_task(self._write(batch))
            self._writing.add(task)
            task.add_done_callback(self._written)

    def _take(self) -> list[_Pending]:
        """The next batch, in arrival order, one report per point; the rest keep their order in the queue."""
        batch: list[_Pending] = []
        points: set[UUID] = set()
        left: deque[_Pending] = deque()
        while self._queue:
            pending = self._queue.popleft()
            if pending.answer.done():  # the request went away before its report was taken: never written
                continue
            if (
                len(batch) >= self._settings.report_batch_max
                or pending.point_id in points
                or pending.point_id in self._busy
                or (pending.alone and batch)
                or (batch and batch[0].alone)
            ):
                left.append(pending)
                points.add(pending.point_id)  # later reports on its point stay behind it
                continue
            batch.append(pending)
            points.add(pending.point_id)
        self._queue = left
        return batch

    def _written(self, task: asyncio.Task[None]) -> None:
        self._writing.discard(task)
        self._start_batches()

    async def _write(self, batch: list[_Pending]) -> None:
        """Write a batch and answer each of its reports; those whose point changed first go back to the queue."""
        retry: list[_Pending] = []
        try:
            retry = await self._write_batch(batch)
        except Exception as exc:  # the batch's connection or statement failed: every report of it says so
            if len(batch) > 1 and not isinstance(exc, DEPENDENCY_ERRORS):
                log.warning("a batch of %d reports failed, writing each alone: %r", len(batch), exc)
                for pending in batch:
                    pending.alone = True
                retry = batch
            else:
                for pending in batch:
                    _fail(pending, exc)
        finally:
            for pending in batch:
                self._busy.discard(pending.point_id)
        for pending in retry:
            pending.attempts += 1
            if pending.attempts >= WRITE_ATTEMPTS:
                _fail(
                    pending,
                    Contended(
                        f"point {pending.point_id}'s status kept changing while this report was written; send it again"
                    ),
                )
        self._queue.extendleft(reversed([p for p in retry if not p.answer.done()]))

    async def _write_batch(self, batch: list[_Pending]) -> list[_Pending]:
        """One read, one statement, then Redis; returns the reports to merge again (their point changed first)."""
        settings = self._settings
        known_at = time.monotonic()  # before the commit, so the cached entries expire within the TTL of later ones
        writes: list[_Write] = []
        retry: list[_Pending] = []
        async with db.connection(self._pool) as conn:
            rows = await data.read_for_reports(conn, [(p.point_id, p.caller.subject, p.key) for p in batch])
            current = {row["point_id"]: row for row in rows}
            now = datetime.now(UTC)
            for pending in batch:
                try:
                    write = _merge(pending, current.get(pending.point_id), now=now, settings=settings)
                    if write is None:  # a retry of a report already applied
                        version = current[pending.point_id]["request_version"]
                        row = await data.get_version(conn, pending.point_id, version)
                        assert row is not None
                        _answer(pending, Recorded(events.status_state(row), replayed=True))
                    else:
                        writes.append(write)
                except Exception as exc:  # this report's own fault (or a bug): only its request fails
                    _fail(pending, exc)
            if not writes:
                return retry
            try:
                saved = await data.save_reports(
                    conn,
                    [w.row for w in writes],
                    [(w.pending.point_id, m) for w in writes for m in w.messages],
                )
            except asyncpg.TransactionRollbackError:  # a deadlock with another writer: nothing was written
                return [w.pending for w in writes]
        done = [w for w in writes if saved.get(w.pending.point_id) == w.state.version]
        retry = [w.pending for w in writes if saved.get(w.pending.point_id) != w.state.version]
        if any(w.messages for w in done):
            outbox.committed()
        try:
            await cache.cache_committed(
                self._redis, settings.namespace, [w.state for w in done], expires_at=known_at + settings.cache_ttl_s
            )
        except Exception:  # committed all the same: never written again, and the entries expire within the TTL
            log.exception("cannot cache %d reported statuses", len(done))
        for write in done:
            _answer(write.pending, Recorded(write.state, replayed=False))
        return retry


def _merge(
    pending: _Pending, current: Mapping[str, Any] | None, *, now: datetime, settings: StatusSettings
) -> _Write | None:
    """Check the report against its point's current status and merge it; None when it was applied already."""
    point_id, caller = pending.point_id, pending.caller
    if current is None:
        raise PointNotFound(f"no point {point_id} (a newly registered point takes a moment to arrive)")
    if not caller.operates(point_id, current["katotth"]):
        raise NotAllowed(f"your account may not report on point {point_id}")
    if current["request_version"] is not None:
        if current["request_hash"] != pending.request_hash:
            raise KeyReused("this Idempotency-Key was used for a different report; use a new key")
        return None
    if current["retired"]:
        raise PointRetired(f"point {point_id} is retired")
    merged = merge_report(
        current,
        pending.report,
        caller=caller.subject,
        now=now,
        low_fuel_hours=settings.low_fuel_hours,
        confirm_event_interval_s=settings.confirm_event_interval_s,
    )
    state = events.status_state({**merged.values, "point_id": point_id, "version": current["version"] + 1})
    messages = (
        pending.context.run(events.report_messages, settings.namespace, state, low_fuel_began=merged.low_fuel_began)
        if merged.publish
        else []
    )
    row = {
        **merged.values,
        "point_id": point_id,
        "read_version": current["version"],
        "published": merged.publish,
        "served": pending.report.served,
        "katotth": current["katotth"],
        "caller": caller.subject if pending.key is not None else None,
        "key": pending.key,
        "request_hash": pending.request_hash if pending.key is not None else None,
    }
    return _Write(pending, row, state, messages)


def _answer(pending: _Pending, recorded: Recorded) -> None:
    if not pending.answer.done():
        pending.answer.set_result(recorded)


def _fail(pending: _Pending, exc: BaseException) -> None:
    if not pending.answer.done():
        pending.answer.set_exception(exc)


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
