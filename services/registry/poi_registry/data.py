"""Every SQL statement of the registry."""

from uuid import UUID

import asyncpg

POINT_COLUMNS = (
    "id, version, name_uk, name_en, category, lat, lon, katotth, address, capacity, facilities,"
    " visibility, retired_at, updated_at"
)


async def insert_point(
    conn: asyncpg.Connection,
    *,
    point_id: UUID,
    name_uk: str,
    name_en: str | None,
    category: str,
    lat: float,
    lon: float,
    katotth: str,
    address: str,
    capacity: int,
    facilities: list[str],
    visibility: str,
) -> asyncpg.Record:
    """Store a new point at version 1."""
    row = await conn.fetchrow(
        f"""INSERT INTO points (id, name_uk, name_en, category, lat, lon, katotth, address, capacity,
                                facilities, visibility)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
            RETURNING {POINT_COLUMNS}""",
        point_id,
        name_uk,
        name_en,
        category,
        lat,
        lon,
        katotth,
        address,
        capacity,
        facilities,
        visibility,
    )
    assert row is not None
    return row


async def get_point(conn: asyncpg.Connection | asyncpg.Pool, point_id: UUID) -> asyncpg.Record | None:
    """One point, retired or not."""
    return await conn.fetchrow(f"SELECT {POINT_COLUMNS} FROM points WHERE id = $1", point_id)


async def count_points(conn: asyncpg.Connection | asyncpg.Pool) -> int:
    """How many points are registered."""
    return int(await conn.fetchval("SELECT count(*) FROM points"))
