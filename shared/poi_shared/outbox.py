"""Transactional outbox: events are written with the change, and a relay publishes them."""

import asyncio
import json
import logging
from collections import defaultdict

import asyncpg
from nats.js import JetStreamContext

from poi_shared.envelope import OutgoingMessage
from poi_shared.jetstream import publish

log = logging.getLogger(__name__)
NOTIFY_CHANNEL = "poi_outbox"
# One relay publishes at a time (per service database) so each subject keeps its order.
RELAY_LOCK_KEY = 0x0B0C5


async def enqueue(conn: asyncpg.Connection, message: OutgoingMessage) -> None:
    """Add a message to the outbox inside the caller's transaction."""
    await conn.execute(
        "INSERT INTO outbox (event_id, subject, headers, body) VALUES ($1, $2, $3, $4)",
        message.event_id,
        message.subject,
        json.dumps(message.headers),
        message.body,
    )


async def relay_once(pool: asyncpg.Pool, js: JetStreamContext, *, batch: int) -> int:
    """Publish one batch of pending messages, deleting those the broker acknowledged."""
    async with pool.acquire() as conn, conn.transaction():
        if not await conn.fetchval("SELECT pg_try_advisory_xact_lock($1)", RELAY_LOCK_KEY):
            return 0
        rows = await conn.fetch(
            "SELECT id, subject, headers, body FROM outbox ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED", batch
        )
        if not rows:
            return 0
        by_subject: dict[str, list[asyncpg.Record]] = defaultdict(list)
        for row in rows:
            by_subject[row["subject"]].append(row)
        results = await asyncio.gather(*(_publish_in_order(js, group) for group in by_subject.values()))
        published = [row_id for ids in results for row_id in ids]
        if published:
            await conn.execute("DELETE FROM outbox WHERE id = ANY($1::bigint[])", published)
    # Raised only after the commit, so what was published is not sent again.
    if len(published) < len(rows):
        raise ConnectionError(f"broker acknowledged {len(published)} of {len(rows)} outbox messages")
    return len(rows)


async def _publish_in_order(js: JetStreamContext, rows: list[asyncpg.Record]) -> list[int]:
    """Publish one subject's messages in order, stopping at the first failure."""
    done: list[int] = []
    for row in rows:
        try:
            await publish(js, row["subject"], row["body"], json.loads(row["headers"]))
        except Exception as exc:
            log.warning("outbox publish to %s failed: %r", row["subject"], exc)
            break
        done.append(row["id"])
    return done


async def run_relay(
    pool: asyncpg.Pool, js: JetStreamContext, *, stop: asyncio.Event, batch: int = 500, idle_s: float = 1.0
) -> None:
    """Publish the outbox until stop is set; woken by NOTIFY, polling as a fallback."""
    wake = asyncio.Event()
    listener: asyncpg.Connection | None = None
    backoff = 0.1
    while not stop.is_set():
        try:
            if listener is None or listener.is_closed():
                listener = await pool.acquire()
                await listener.add_listener(NOTIFY_CHANNEL, lambda *_: wake.set())
            wake.clear()
            sent = await relay_once(pool, js, batch=batch)
            backoff = 0.1
            if sent < batch:
                await _wait_any(wake, stop, idle_s)
        except Exception as exc:
            log.warning("outbox relay retrying in %.1fs: %r", backoff, exc)
            if listener is not None:
                await _release(pool, listener)
                listener = None
            await _wait_any(stop, stop, backoff)
            backoff = min(backoff * 2, 5.0)
    if listener is not None:
        await _release(pool, listener)


async def _wait_any(first: asyncio.Event, second: asyncio.Event, seconds: float) -> None:
    """Sleep until either event is set or the timeout passes."""
    waiters = [asyncio.ensure_future(first.wait()), asyncio.ensure_future(second.wait())]
    try:
        await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()


async def _release(pool: asyncpg.Pool, conn: asyncpg.Connection) -> None:
    """Give a listening connection back, whatever state it is in."""
    try:
        await pool.release(conn)  # the pool's reset unlistens
    except Exception:
        conn.terminate()


async def backlog(conn: asyncpg.Connection, *, timeout_s: float) -> tuple[int, float]:
    """How many messages wait in the outbox, and the age in seconds of the oldest (0 when none)."""
    row = await conn.fetchrow(
        "SELECT count(*) AS pending, coalesce(extract(epoch FROM now() - min(created_at)), 0) AS oldest_s FROM outbox",
        timeout=timeout_s,
    )
    assert row is not None
    return row["pending"], float(row["oldest_s"])
