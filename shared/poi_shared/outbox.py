"""Transactional outbox: events are written with the change, and a relay publishes them."""

import asyncio
import json
import logging
from collections import defaultdict
from collections.abc import Sequence

import asyncpg
from nats.js import JetStreamContext
from opentelemetry import propagate, trace

from poi_shared import db
from poi_shared.envelope import OutgoingMessage
from poi_shared.jetstream import publish

log = logging.getLogger(__name__)
tracer = trace.get_tracer(__name__)
# One relay publishes at a time per service database, so each subject keeps its order. It holds this session-level
# advisory lock on its own connection, never a transaction across publishing: inserts, vacuum and the other
# replicas' relays are not held up by a slow broker. Giving the connection back to the pool releases the lock (the
# relay marks it with db.holds_session_state, so the pool resets it), and the server drops it when the connection dies.
RELAY_LOCK_KEY = 0x0B0C5
# The wake-up events of the relays running in this process (see committed). Not NOTIFY: PostgreSQL queues
# notifications under one global lock taken at commit, which serialised every transaction that wrote an event.
_relays_to_wake: set[asyncio.Event] = set()


def committed() -> None:
    """Wake this process's relays: call it after committing outbox rows (relays elsewhere find them by polling)."""
    for wake in _relays_to_wake:
        wake.set()


async def enqueue(conn: asyncpg.Connection, message: OutgoingMessage) -> None:
    """Add a message to the outbox inside the caller's transaction."""
    await conn.execute(
        "INSERT INTO outbox (event_id, subject, headers, body) VALUES ($1, $2, $3, $4)",
        message.event_id,
        message.subject,
        json.dumps(message.headers),
        message.body,
    )


async def enqueue_many(conn: asyncpg.Connection, messages: Sequence[OutgoingMessage]) -> None:
    """Add many messages to the outbox inside the caller's transaction, in one COPY (kept in their order)."""
    if not messages:
        return
    await conn.copy_records_to_table(
        "outbox",
        columns=["event_id", "subject", "headers", "body"],
        records=[(m.event_id, m.subject, json.dumps(m.headers), m.body) for m in messages],
    )


def insert_keyed_from_arrays(first_param: int, *, key_type: str, keys: str) -> str:
    """SQL adding messages, given as five array parameters from $first_param on (see as_keyed_arrays), to the outbox
    in their order, those whose key the query keys returns: for many changes and their events written in a single
    statement (a data-modifying CTE, keys selecting the changes it made), which needs no transaction round trips."""
    p = first_param
    return (
        "INSERT INTO outbox (event_id, subject, headers, body) "  # noqa: S608 - parameter numbers and caller's SQL
        "SELECT m.event_id, m.subject, m.headers::jsonb, m.body "
        f"FROM unnest(${p}::{key_type}[], ${p + 1}::text[], ${p + 2}::text[], ${p + 3}::text[], ${p + 4}::bytea[]) "
        f"WITH ORDINALITY AS m(key, event_id, subject, headers, body, n) WHERE m.key IN ({keys}) ORDER BY m.n"
    )


def as_keyed_arrays(
    messages: Sequence[tuple[object, OutgoingMessage]],
) -> tuple[list[object], list[str], list[str], list[str], list[bytes]]:
    """(key, message) pairs as the five arrays insert_keyed_from_arrays takes: keys, event ids, subjects, headers
    (JSON), bodies."""
    return (
        [key for key, _ in messages],
        [m.event_id for _, m in messages],
        [m.subject for _, m in messages],
        [json.dumps(m.headers) for _, m in messages],
        [m.body for _, m in messages],
    )


async def relay_once(
    pool: asyncpg.Pool,
    js: JetStreamContext,
    *,
    batch: int,
    batch_timeout_s: float = 10.0,
    publish_timeout_s: float = 5.0,
) -> int:
    """Publish one batch unless another relay is at work on this database; returns how many were acknowledged."""
    async with db.connection(pool) as conn:
        db.holds_session_state(conn)
        if not await conn.fetchval("SELECT pg_try_advisory_lock($1)", RELAY_LOCK_KEY):
            return 0
        return await _relay_batch(
            conn, js, batch=batch, batch_timeout_s=batch_timeout_s, publish_timeout_s=publish_timeout_s
        )


async def _relay_batch(
    conn: asyncpg.Connection, js: JetStreamContext, *, batch: int, batch_timeout_s: float, publish_timeout_s: float
) -> int:
    """Publish up to batch messages, subjects concurrently, each subject in order; delete what was acknowledged.

    The caller holds the relay lock. Raises ConnectionError when the broker did not acknowledge every message
    within batch_timeout_s; those stay in the outbox and are published again, in order, by the next batch.
    """
    rows = await conn.fetch("SELECT id, subject, headers, body FROM outbox ORDER BY id LIMIT $1", batch)
    if not rows:
        return 0
    by_subject: dict[str, list[asyncpg.Record]] = defaultdict(list)
    for row in rows:
        by_subject[row["subject"]].append(row)
    acked: list[int] = []
    tasks = [
        asyncio.create_task(_publish_in_order(js, group, acked, publish_timeout_s)) for group in by_subject.values()
    ]
    _, late = await asyncio.wait(tasks, timeout=batch_timeout_s)
    for task in late:
        task.cancel()
    await asyncio.gather(*late, return_exceptions=True)
    if acked:
        await conn.execute("DELETE FROM outbox WHERE id = ANY($1::bigint[])", acked)
    if len(acked) < len(rows):
        raise ConnectionError(f"broker acknowledged {len(acked)} of {len(rows)} outbox messages")
    return len(acked)


async def _publish_in_order(
    js: JetStreamContext, rows: list[asyncpg.Record], acked: list[int], timeout_s: float
) -> None:
    """Publish one subject's messages in order, noting each acknowledged id; stop at the first failure."""
    for row in rows:
        headers = json.loads(row["headers"])
        # The relay's span is a child of the request that wrote the message, and the consumers' parent.
        with tracer.start_as_current_span(
            f"publish {headers.get('ce-type', row['subject'])}",
            context=propagate.extract(headers),
            kind=trace.SpanKind.PRODUCER,
            attributes={"messaging.system": "nats", "messaging.destination.name": row["subject"]},
        ):
            propagate.inject(headers)
            try:
                await publish(js, row["subject"], row["body"], headers, timeout_s=timeout_s)
            except Exception as exc:
                log.warning("outbox publish to %s failed: %r", row["subject"], exc)
                return
        acked.append(row["id"])


async def run_relay(
    pool: asyncpg.Pool,
    js: JetStreamContext,
    *,
    stop: asyncio.Event,
    batch: int = 500,
    batch_timeout_s: float = 10.0,
    publish_timeout_s: float = 5.0,
    poll_s: float = 0.05,
    linger_s: float = 0.01,
) -> None:
    """Publish the outbox until stop is set: woken by committed() in this process, else polling every poll_s (for
    rows committed by other processes and replicas); one relay per database.

    Woken, it lingers linger_s before reading, so that rows committed together make one batch: under steady load
    every commit wakes it, and a batch per wake-up costs a read (often empty) and a delete per message.
    """
    wake = asyncio.Event()
    _relays_to_wake.add(wake)
    backoff = 0.1
    try:
        while not stop.is_set():
            try:
                async with db.connection(pool) as conn:
                    db.holds_session_state(conn)
                    if not await conn.fetchval("SELECT pg_try_advisory_lock($1)", RELAY_LOCK_KEY):
                        await _wait_any(stop, stop, max(poll_s, 1.0))  # another replica relays: take over if it stops
                        continue
                    while not stop.is_set():
                        wake.clear()
                        sent = await _relay_batch(
                            conn, js, batch=batch, batch_timeout_s=batch_timeout_s, publish_timeout_s=publish_timeout_s
                        )
                        backoff = 0.1
                        if sent < batch:
                            await _wait_any(wake, stop, poll_s)
                            if wake.is_set() and linger_s:
                                await _wait_any(stop, stop, linger_s)
            except Exception as exc:
                log.warning("outbox relay retrying in %.1fs: %r", backoff, exc)
                await _wait_any(stop, stop, backoff)
                backoff = min(backoff * 2, 5.0)
    finally:
        _relays_to_wake.discard(wake)


async def _wait_any(first: asyncio.Event, second: asyncio.Event, seconds: float) -> None:
    """Sleep until either event is set or the timeout passes."""
    waiters = [asyncio.ensure_future(first.wait()), asyncio.ensure_future(second.wait())]
    try:
        await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()


async def backlog(conn: asyncpg.Connection, *, timeout_s: float) -> tuple[int, float]:
    """How many messages wait in the outbox, and the age in seconds of the oldest (0 when none)."""
    row = await conn.fetchrow(
        "SELECT count(*) AS pending, coalesce(extract(epoch FROM now() - min(created_at)), 0) AS oldest_s FROM outbox",
        timeout=timeout_s,
    )
    assert row is not None
    return row["pending"], float(row["oldest_s"])
