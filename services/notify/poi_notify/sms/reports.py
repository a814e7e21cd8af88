"""Delivery reports: the DLR route only notes each one in memory; a loop writes them to PostgreSQL in batches.

Kannel calls back twice per message (accepted by the SMSC, then delivered) and never retries a callback that failed:
a report must be taken at once and cheaply, not with a database round trip per callback while the sender competes
for the same process. Reports written late by a few tens of milliseconds lose nothing; one lost is a message whose
fate nobody learns. A report that settles nothing (accepted, queued at the SMSC) waits up to hold_s for its
message's final one, so a message delivered at once costs the database one write, not two.
"""

import asyncio
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from uuid import UUID

import asyncpg

from poi_notify import data
from poi_shared.errors import DEPENDENCY_ERRORS, DependencyUnavailable

log = logging.getLogger(__name__)
# Kannel's report types that settle a message: 1 delivered to the phone; 2 and 16 not delivered.
FINAL_STATES = {1: "delivered", 2: "failed", 16: "failed"}


@dataclass(frozen=True, slots=True)
class Report:
    """One callback as Kannel made it."""

    id: UUID
    dlr_type: int
    at: datetime


@dataclass(slots=True)
class ReportBuffer:
    """Reports taken but not yet written; at most `limit` (the database is down): beyond, callers get a 503."""

    limit: int
    pending: list[Report] = field(default_factory=list)


def take(buffer: ReportBuffer, *, id: UUID, dlr_type: int) -> None:
    """Note a report for the next write; DependencyUnavailable when too many wait for a database that is down."""
    if len(buffer.pending) >= buffer.limit:
        raise DependencyUnavailable("postgresql")
    buffer.pending.append(Report(id, dlr_type, datetime.now(UTC)))


@dataclass(frozen=True, slots=True)
class Settled:
    """What a batch leaves each message with: its last report that counts, and the state it settles (if final)."""

    dlr_type: int
    final_state: str | None
    at: datetime


def merge(reports: list[Report]) -> dict[UUID, Settled]:
    """One row per message (one UPDATE may change a row once): by the rule the database applies to each report."""
    merged: dict[UUID, Settled] = {}
    for report in reports:
        final_state = FINAL_STATES.get(report.dlr_type)
        earlier = merged.get(report.id)
        # Reports come in any order: a late 'accepted by the SMSC' (8) never hides 'delivered' (1).
        if earlier is not None and earlier.final_state is not None and final_state is None:
            merged[report.id] = Settled(earlier.dlr_type, earlier.final_state, report.at)
        else:
            merged[report.id] = Settled(report.dlr_type, final_state, report.at)
    return merged


def due(reports: list[Report], *, now: datetime, hold_s: float) -> tuple[list[Report], list[Report]]:
    """(to write now, to hold back): a report that settles nothing waits hold_s for its message's final one."""
    settled = {r.id for r in reports if r.dlr_type in FINAL_STATES}
    cutoff = now - timedelta(seconds=hold_s)
    write: list[Report] = []
    hold: list[Report] = []
    for report in reports:
        (write if report.id in settled or report.at <= cutoff else hold).append(report)
    return write, hold


async def flush(pool: asyncpg.Pool, buffer: ReportBuffer, *, hold_s: float = 0.0) -> int:
    """Write the reports taken so far (but those held back) in one statement; how many messages it named.

    Reports stay on failure.
    """
    if not buffer.pending:
        return 0
    # A message's reports are either all written or all held (those held are its latest), so each message's
    # reports stay in the order they came, whatever fails.
    reports, buffer.pending = due(buffer.pending, now=datetime.now(UTC), hold_s=hold_s)
    if not reports:
        return 0
    merged = merge(reports)
    try:
        known = await data.record_delivery_reports(
            pool,
            ids=list(merged),
            dlr_types=[s.dlr_type for s in merged.values()],
            final_states=[s.final_state for s in merged.values()],
            ats=[s.at for s in merged.values()],
        )
    except BaseException:
        buffer.pending[:0] = reports  # before those held and taken meanwhile: the order decides which report wins
        raise
    if known < len(merged):
        log.warning("%d delivery reports name no message notify knows: ignored", len(merged) - known)
    return len(merged)


async def run_writer(
    pool: asyncpg.Pool, buffer: ReportBuffer, *, interval_s: float, hold_s: float, stop: asyncio.Event
) -> None:
    """Write the reports every interval_s until stopped, then all once more: none taken before the stop is lost."""
    delay = interval_s
    try:
        while True:
            stopping = stop.is_set()
            try:
                await flush(pool, buffer, hold_s=0.0 if stopping else hold_s)
            except DEPENDENCY_ERRORS as exc:
                # Also when stopping: the supervisor waits a while for this loop before it gives up on it.
                delay = min(max(delay * 2, 0.1), 5.0)
                log.warning("writing %d delivery reports failed, again in %.1fs: %r", len(buffer.pending), delay, exc)
                await asyncio.sleep(delay)
                continue
            delay = interval_s
            if stopping:
                return
            try:
                await asyncio.wait_for(stop.wait(), interval_s)
            except TimeoutError:
                pass
    except asyncio.CancelledError:
        if buffer.pending:
            log.error("stopped with %d delivery reports not written: they are lost", len(buffer.pending))
        raise
