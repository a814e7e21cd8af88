"""Inbox: a consumer records each event id it handled, in the same transaction as its work."""

import asyncpg


async def claim(conn: asyncpg.Connection, *, consumer: str, event_id: str) -> bool:
    """True the first time this consumer sees the event; False for a repeat, which must be skipped."""
    inserted = await conn.fetchval(
        "INSERT INTO inbox (consumer, event_id) VALUES ($1, $2) ON CONFLICT DO NOTHING RETURNING true",
        consumer,
        event_id,
    )
    return bool(inserted)
