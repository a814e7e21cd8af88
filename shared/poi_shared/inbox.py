"""Inbox: a consumer records each event id it handled, in the same transaction as its work."""

from collections.abc import Sequence

import asyncpg

from poi_shared import db


async def claim(conn: asyncpg.Connection, *, consumer: str, event_id: str) -> bool:
    """True the first time this consumer sees the event; False for a repeat, which must be skipped."""
    inserted = await conn.fetchval(
        "INSERT INTO inbox (consumer, event_id) VALUES ($1, $2) ON CONFLICT DO NOTHING RETURNING true",
        consumer,
        event_id,
    )
    return bool(inserted)


async def claim_many(conn: asyncpg.Connection, *, consumer: str, event_ids: Sequence[str]) -> set[str]:
    """The events this consumer sees for the first time, of those given (one statement); the rest are repeats."""
    rows = await conn.fetch(
        """INSERT INTO inbox (consumer, event_id) SELECT $1, unnest($2::text[])
           ON CONFLICT DO NOTHING RETURNING event_id""",
        consumer,
        list(event_ids),
    )
    return {row["event_id"] for row in rows}


async def prune(pool: asyncpg.Pool, *, consumer: str, older_than_s: float, batch: int) -> int:
    """Forget what the consumer handled more than older_than_s ago, batch rows per statement; returns how many."""
    removed = 0
    while True:
        async with db.connection(pool) as conn:
            status = await conn.execute(
                """DELETE FROM inbox WHERE consumer = $1 AND event_id IN (
                       SELECT event_id FROM inbox
                       WHERE consumer = $1 AND handled_at < now() - make_interval(secs => $2)
                       LIMIT $3)""",
                consumer,
                older_than_s,
                batch,
            )
        count = int(status.split()[-1])
        removed += count
        if count < batch:
            return removed
