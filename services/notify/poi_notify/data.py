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
