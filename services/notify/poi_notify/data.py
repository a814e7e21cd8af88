"""Every SQL statement of the notify service."""

from datetime import datetime
from uuid import UUID

import asyncpg

from poi_shared import db


async def insert_observation(
    conn: asyncpg.Connection,
    *,
    event_id: str,
    point_id: UUID,
    version: int,
    state: str,
    reported_at: datetime,
) -> None:
    """Record one status event."""
    await conn.execute(
        """INSERT INTO status_observations (event_id, point_id, version, state, reported_at)
           VALUES ($1, $2, $3, $4, $5)""",
        event_id,
        point_id,
        version,
        state,
        reported_at,
    )


async def list_observations(
    pool: asyncpg.Pool, *, point_id: UUID, after_version: int, limit: int
) -> list[asyncpg.Record]:
    """A point's observations in version order, one page."""
    async with db.connection(pool) as conn:
        return await conn.fetch(
            """SELECT event_id, point_id, version, state, reported_at, observed_at FROM status_observations
               WHERE point_id = $1 AND version > $2 ORDER BY version, event_id LIMIT $3""",
            point_id,
            after_version,
            limit,
        )


# --- SMS: numbers and the message outbox ---


async def phone_for_sending(conn: asyncpg.Connection, phone_hash: str) -> asyncpg.Record | None:
    """What decides whether a number may get a message, locked until the caller's transaction ends."""
    return await conn.fetchrow(
        "SELECT latin, confirmed_at, stopped_at, is_contact FROM phones WHERE phone_hash = $1 FOR SHARE",
        phone_hash,
    )


async def insert_sms(
    conn: asyncpg.Connection,
    *,
    id: UUID,
    dedup_key: str,
    phone_hash: str,
    kind: str,
    body: str,
    parts: int,
    not_before: datetime | None,
) -> UUID | None:
    """Queue a message unless its dedup key was queued before; the new id, or None."""
    return await conn.fetchval(
        """INSERT INTO sms_messages (id, dedup_key, phone_hash, kind, body, parts, not_before)
           VALUES ($1, $2, $3, $4, $5, $6, coalesce($7, now()))
           ON CONFLICT (dedup_key) DO NOTHING RETURNING id""",
        id,
        dedup_key,
        phone_hash,
        kind,
        body,
        parts,
        not_before,
    )
