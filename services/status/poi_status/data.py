"""Every SQL statement of the status service."""

from datetime import datetime
from uuid import UUID

import asyncpg

STATUS_COLUMNS = "point_id, version, state, note, reported_by, reported_at"


async def upsert_known_point(
    conn: asyncpg.Connection | asyncpg.Pool, *, point_id: UUID, version: int, katotth: str, retired: bool
) -> None:
    """Remember a point from the registry; older versions never overwrite newer ones."""
    await conn.execute(
        """INSERT INTO known_points (id, version, katotth, retired) VALUES ($1, $2, $3, $4)
           ON CONFLICT (id) DO UPDATE SET version = EXCLUDED.version, katotth = EXCLUDED.katotth,
                                          retired = EXCLUDED.retired
           WHERE known_points.version < EXCLUDED.version""",
        point_id,
        version,
        katotth,
        retired,
    )


async def get_known_point(conn: asyncpg.Connection, point_id: UUID) -> asyncpg.Record | None:
    """The point as status knows it (id, katotth, retired)."""
    return await conn.fetchrow("SELECT id, katotth, retired FROM known_points WHERE id = $1", point_id)


async def save_report(
    conn: asyncpg.Connection,
    *,
    point_id: UUID,
    state: str,
    note: str | None,
    reported_by: str,
    reported_at: datetime,
) -> asyncpg.Record:
    """Make the report the point's current status (next version) and add it to the history."""
    row = await conn.fetchrow(
        f"""INSERT INTO point_status (point_id, version, state, note, reported_by, reported_at)
            VALUES ($1, 1, $2, $3, $4, $5)
            ON CONFLICT (point_id) DO UPDATE SET version = point_status.version + 1, state = EXCLUDED.state,
                note = EXCLUDED.note, reported_by = EXCLUDED.reported_by, reported_at = EXCLUDED.reported_at
            RETURNING {STATUS_COLUMNS}""",  # noqa: S608 -- constant column list
        point_id,
        state,
        note,
        reported_by,
        reported_at,
    )
    assert row is not None
    await conn.execute(
        f"""INSERT INTO status_reports ({STATUS_COLUMNS})
            VALUES ($1, $2, $3, $4, $5, $6)""",  # noqa: S608 -- constant column list
        *row.values(),
    )
    return row


async def get_status(conn: asyncpg.Connection | asyncpg.Pool, point_id: UUID) -> asyncpg.Record | None:
    """The point's current status, if it ever had a report."""
    return await conn.fetchrow(
        f"SELECT {STATUS_COLUMNS} FROM point_status WHERE point_id = $1",  # noqa: S608 -- constant column list
        point_id,
    )
