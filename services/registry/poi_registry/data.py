"""Every SQL statement of the registry."""

import json
from uuid import UUID

import asyncpg

POINT_COLUMNS = (
    "id, code, version, name_uk, name_en, category, host_type, lat, lon, address_uk, address_en, settlement, katotth,"
    " capacity, services, schedule, operator_org, public_phone, contact_phone, visibility, retired_at, updated_at"
)


async def insert_point(
    conn: asyncpg.Connection,
    *,
    point_id: UUID,
    name_uk: str,
    name_en: str | None,
    category: str,
    host_type: str,
    lat: float,
    lon: float,
    address_uk: str,
    address_en: str | None,
    settlement: str,
    katotth: str,
    capacity: int,
    services: list[str],
    schedule: dict[str, object],
    operator_org: str | None,
    public_phone: str | None,
    contact_phone: str | None,
    visibility: str,
) -> asyncpg.Record:
    """Store a new point at version 1 with the next code of its oblast."""
    row = await conn.fetchrow(
        f"""INSERT INTO points (id, code, name_uk, name_en, category, host_type, lat, lon, address_uk, address_en,
                                settlement, katotth, capacity, services, schedule, operator_org, public_phone,
                                contact_phone, visibility)
            VALUES ($1, substr($11, 3, 2) || '-' || lpad(nextval('point_code_seq')::text, 6, '0'), $2, $3, $4, $5,
                    $6, $7, $8, $9, $10, $11, $12, $13, $14::jsonb, $15, $16, $17, $18)
            RETURNING {POINT_COLUMNS}""",  # noqa: S608 -- constant column list
        point_id,
        name_uk,
        name_en,
        category,
        host_type,
        lat,
        lon,
        address_uk,
        address_en,
        settlement,
        katotth,
        capacity,
        services,
        json.dumps(schedule),
        operator_org,
        public_phone,
        contact_phone,
        visibility,
    )
    assert row is not None
    return row


async def get_point(conn: asyncpg.Connection | asyncpg.Pool, point_id: UUID) -> asyncpg.Record | None:
    """One point, retired or not."""
    return await conn.fetchrow(
        f"SELECT {POINT_COLUMNS} FROM points WHERE id = $1",  # noqa: S608 -- constant column list
        point_id,
    )


async def count_points(conn: asyncpg.Connection | asyncpg.Pool) -> int:
    """How many points are registered."""
    return int(await conn.fetchval("SELECT count(*) FROM points"))
