"""Every SQL statement of the status service."""

from collections.abc import Sequence
from datetime import date, datetime
from typing import Any
from uuid import UUID

import asyncpg

from poi_shared import outbox
from poi_shared.envelope import OutgoingMessage

# The day a visitor was served is the day in Ukraine.
DAY_ZONE = "Europe/Kyiv"
STATUS_COLUMNS = (
    "point_id, version, state, previous_state, cause, services, power, fuel_hours, low_fuel, internet, occupancy, "
    "capacity, note, reported_by, reported_at, changed_at"
)
KNOWN_COLUMNS = (
    "id, version, code, name_uk, settlement, katotth, category, capacity, services, schedule_kind, visibility, retired"
)
# Advisory lock keys, one per job that a single replica at a time must do.
STALE_LOCK_KEY = 0x0B0C7
CACHE_KEEPER_LOCK_KEY = 0x0B0C8
PRUNE_LOCK_KEY = 0x0B0C9


async def try_job_lock(conn: asyncpg.Connection, key: int) -> bool:
    """Take a job's lock for the caller's transaction; False if another replica holds it."""
    return bool(await conn.fetchval("SELECT pg_try_advisory_xact_lock($1)", key))


# Known points


async def upsert_known_point(
    conn: asyncpg.Connection | asyncpg.Pool,
    *,
    point_id: UUID,
    version: int,
    code: str,
    name_uk: str,
    settlement: str,
    katotth: str,
    category: str,
    capacity: int,
    services: list[str],
    schedule_kind: str,
    visibility: str,
    retired: bool,
) -> None:
    """Remember a point from the registry (older versions never overwrite newer ones); it starts with no status."""
    await conn.execute(
        """WITH known AS (
               INSERT INTO known_points (id, version, code, name_uk, settlement, katotth, category, capacity,
                                         services, schedule_kind, visibility, retired, written_xid)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, pg_current_xact_id())
               ON CONFLICT (id) DO UPDATE SET
                   version = EXCLUDED.version, code = EXCLUDED.code, name_uk = EXCLUDED.name_uk,
                   settlement = EXCLUDED.settlement, katotth = EXCLUDED.katotth, category = EXCLUDED.category,
                   capacity = EXCLUDED.capacity, services = EXCLUDED.services,
                   schedule_kind = EXCLUDED.schedule_kind, visibility = EXCLUDED.visibility,
                   retired = EXCLUDED.retired, written_xid = EXCLUDED.written_xid
               WHERE known_points.version < EXCLUDED.version
               RETURNING id)
           INSERT INTO point_status (point_id, version, state) SELECT id, 0, 'unknown' FROM known
           ON CONFLICT (point_id) DO NOTHING""",
        point_id,
        version,
        code,
        name_uk,
        settlement,
        katotth,
        category,
        capacity,
        services,
        schedule_kind,
        visibility,
        retired,
    )


async def known_points_since(conn: asyncpg.Connection, *, horizon: int | None) -> tuple[list[asyncpg.Record], int]:
    """Points written by transactions from the horizon on (all when None), and the horizon for the next call.

    The next horizon is the oldest transaction still running now: whatever commits after this read has a
    transaction id at least that high, so no change is missed whatever order transactions commit in.
    """
    rows = await conn.fetch(
        f"""SELECT {KNOWN_COLUMNS}, pg_snapshot_xmin(pg_current_snapshot())::text::bigint AS horizon
            FROM known_points WHERE $1::bigint IS NULL OR written_xid >= $1::text::xid8""",  # noqa: S608 -- constant columns
        horizon,
    )
    if rows:
        return rows, rows[0]["horizon"]
    return rows, await conn.fetchval("SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint")


async def known_points_by_id(conn: asyncpg.Connection, point_ids: Sequence[UUID]) -> list[asyncpg.Record]:
    """These points as status knows them (unknown ids are left out)."""
    return await conn.fetch(
        f"SELECT {KNOWN_COLUMNS} FROM known_points WHERE id = ANY($1::uuid[])",  # noqa: S608 -- constant columns
        list(point_ids),
    )


# Current status and history


# A report's row in save_reports: the point, the version it was merged into, the next version's values, and what
# else it writes (published, served, area, idempotency key). Columns in the order of REPORT_ARRAYS.
REPORT_ARRAYS = (
    ("point_id", "uuid"),
    ("read_version", "bigint"),
    ("state", "text"),
    ("previous_state", "text"),
    ("cause", "text"),
    ("services", "text"),
    ("power", "text"),
    ("fuel_hours", "float8"),
    ("low_fuel", "bool"),
    ("internet", "text"),
    ("occupancy", "int"),
    ("capacity", "int"),
    ("note", "text"),
    ("reported_by", "text"),
    ("reported_at", "timestamptz"),
    ("changed_at", "timestamptz"),
    ("published", "bool"),
    ("served", "int"),
    ("katotth", "text"),
    ("caller", "text"),
    ("key", "text"),
    ("request_hash", "bytea"),
)
_REPORT_INPUT = "unnest({}) AS i({})".format(
    ", ".join(f"${n}::{sql_type}[]" for n, (_, sql_type) in enumerate(REPORT_ARRAYS, start=1)),
    ", ".join(name for name, _ in REPORT_ARRAYS),
)


async def read_for_reports(
    conn: asyncpg.Connection, requests: Sequence[tuple[UUID, str, str | None]]
) -> list[asyncpg.Record]:
    """For each (point, caller, key): the point's current status, what status knows of the point, and what an
    earlier report with the key made (unknown points are left out)."""
    return await conn.fetch(
        """SELECT s.point_id, s.version, s.state, s.previous_state, s.cause, s.services, s.power, s.fuel_hours,
                  s.low_fuel, s.internet, s.occupancy, s.capacity, s.note, s.reported_by, s.reported_at,
                  s.changed_at, s.published_reported_at,
                  k.katotth, k.category, k.capacity AS point_capacity, k.services AS offered, k.retired,
                  r.request_hash, r.version AS request_version
           FROM unnest($1::uuid[], $2::text[], $3::text[]) AS i(point_id, caller, key)
           JOIN point_status s ON s.point_id = i.point_id
           JOIN known_points k ON k.id = s.point_id
           LEFT JOIN report_requests r ON r.point_id = i.point_id AND r.caller = i.caller AND r.key = i.key""",
        [point_id for point_id, _, _ in requests],
        [caller for _, caller, _ in requests],
        [key for _, _, key in requests],
    )


async def save_reports(
    conn: asyncpg.Connection,
    reports: Sequence[dict[str, Any]],
    messages: Sequence[tuple[UUID, OutgoingMessage]],
) -> dict[UUID, int]:
    """Make each report's next version current unless its point's status changed since it was read at its
    read_version; returns the new version of each point written (the others had another change first).

    reports are rows with the keys of REPORT_ARRAYS, one per point; messages are each report's events, keyed by
    its point. One statement: for every report, the status, its history row, the people served, the idempotency
    key and the events are all written, or (when another change came first) none of them. Rows are locked in point
    order, as area switches lock them, so concurrent batches wait for each other instead of deadlocking.
    """
    arrays = [[report[name] for report in reports] for name, _ in REPORT_ARRAYS]
    events = outbox.insert_keyed_from_arrays(len(REPORT_ARRAYS) + 1, key_type="uuid", keys="SELECT point_id FROM saved")
    rows = await conn.fetch(
        f"""WITH input AS MATERIALIZED (SELECT * FROM {_REPORT_INPUT}),
            locked AS (
                SELECT s.point_id FROM point_status s JOIN input i ON i.point_id = s.point_id
                WHERE s.version = i.read_version ORDER BY s.point_id FOR UPDATE OF s),
            saved AS (
                UPDATE point_status s SET version = s.version + 1, state = i.state,
                    previous_state = i.previous_state, cause = i.cause, services = i.services::jsonb,
                    power = i.power, fuel_hours = i.fuel_hours, low_fuel = i.low_fuel, internet = i.internet,
                    occupancy = i.occupancy, capacity = i.capacity, note = i.note, reported_by = i.reported_by,
                    reported_at = i.reported_at, changed_at = i.changed_at,
                    published_reported_at = CASE WHEN i.published THEN i.reported_at
                                                 ELSE s.published_reported_at END
                FROM locked l, input i
                WHERE s.point_id = l.point_id AND i.point_id = l.point_id AND s.version = i.read_version
                RETURNING {", ".join(f"s.{c.strip()}" for c in STATUS_COLUMNS.split(","))},
                          i.served, i.katotth, i.caller, i.key, i.request_hash),
            history AS (
                INSERT INTO status_reports ({STATUS_COLUMNS}, served)
                SELECT {STATUS_COLUMNS}, served FROM saved),
            visitors AS (
                INSERT INTO visitors_daily (point_id, day, katotth, served)
                SELECT point_id, (reported_at AT TIME ZONE '{DAY_ZONE}')::date, katotth, served FROM saved
                WHERE served > 0
                ON CONFLICT (point_id, day) DO UPDATE SET served = visitors_daily.served + EXCLUDED.served),
            request AS (
                INSERT INTO report_requests (point_id, caller, key, request_hash, version)
                SELECT point_id, caller, key, request_hash, version FROM saved WHERE key IS NOT NULL),
            events AS ({events})
            SELECT point_id, version FROM saved""",  # noqa: S608 -- constant columns, zone and outbox statement
        *arrays,
        *outbox.as_keyed_arrays(messages),
    )
    return {row["point_id"]: row["version"] for row in rows}


async def get_version(conn: asyncpg.Connection, point_id: UUID, version: int) -> asyncpg.Record | None:
    """One version of the point's status from the history."""
    return await conn.fetchrow(
        f"SELECT {STATUS_COLUMNS} FROM status_reports WHERE point_id = $1 AND version = $2",  # noqa: S608 -- constant columns
        point_id,
        version,
    )


async def get_status(conn: asyncpg.Connection, point_id: UUID) -> asyncpg.Record | None:
    """The point's current status (version 0 if it never had one); None for a point status does not know."""
    return await conn.fetchrow(
        f"SELECT {STATUS_COLUMNS} FROM point_status WHERE point_id = $1",  # noqa: S608 -- constant columns
        point_id,
    )


async def get_statuses(conn: asyncpg.Connection, point_ids: Sequence[UUID]) -> list[asyncpg.Record]:
    """The current status of each of these points that status knows."""
    return await conn.fetch(
        f"SELECT {STATUS_COLUMNS} FROM point_status WHERE point_id = ANY($1::uuid[])",  # noqa: S608 -- constant columns
        list(point_ids),
    )


async def current_versions_after(conn: asyncpg.Connection, *, after: UUID | None, limit: int) -> list[asyncpg.Record]:
    """Every point's current version that is a real one (not 0), by point id, one page after the given id."""
    return await conn.fetch(
        """SELECT point_id, version FROM point_status
           WHERE version > 0 AND ($1::uuid IS NULL OR point_id > $1) ORDER BY point_id LIMIT $2""",
        after,
        limit,
    )


# Idempotent reports


async def prune_requests(conn: asyncpg.Connection, *, older_than_s: float, batch: int) -> int:
    """Forget up to batch idempotency keys older than older_than_s; returns how many."""
    status = await conn.execute(
        """DELETE FROM report_requests WHERE ctid = ANY(ARRAY(
               SELECT ctid FROM report_requests WHERE created_at < now() - make_interval(secs => $1) LIMIT $2))""",
        older_than_s,
        batch,
    )
    return int(status.split()[-1])


# Bulk changes: area activation and the stale sweep

_SAVED_WITH_AREA = f"""
    history AS (
        INSERT INTO status_reports ({STATUS_COLUMNS}) SELECT {STATUS_COLUMNS} FROM saved)
    SELECT saved.*, known_points.katotth FROM saved JOIN known_points ON known_points.id = saved.point_id
    ORDER BY saved.point_id"""  # noqa: S608 -- constant columns


async def switch_area(
    conn: asyncpg.Connection,
    *,
    like_patterns: Sequence[str],
    category: str | None,
    state: str,
    untouched: Sequence[str],
    cause: str,
    by: str,
    at: datetime,
) -> list[asyncpg.Record]:
    """Put every on-blackout point of the areas that is not in an untouched state into state; returns the new versions.

    Occupancy is forgotten: a point switched on or off starts a new shift, and its operator reports the people.
    """
    return await conn.fetch(
        f"""WITH targets AS (
                SELECT s.point_id FROM point_status s JOIN known_points k ON k.id = s.point_id
                WHERE k.katotth LIKE ANY($1::text[]) AND k.schedule_kind = 'on_blackout' AND NOT k.retired
                  AND ($2::text IS NULL OR k.category = $2) AND s.state <> ALL($4::text[])
                ORDER BY s.point_id FOR UPDATE OF s),
            saved AS (
                UPDATE point_status s SET version = s.version + 1, previous_state = s.state, state = $3,
                    cause = $5, occupancy = NULL, capacity = k.capacity, reported_by = $6, reported_at = $7,
                    changed_at = $7, published_reported_at = $7
                FROM targets t, known_points k WHERE s.point_id = t.point_id AND k.id = s.point_id
                RETURNING {", ".join(f"s.{c.strip()}" for c in STATUS_COLUMNS.split(","))}),
            {_SAVED_WITH_AREA}""",  # noqa: S608 -- constant columns
        list(like_patterns),
        category,
        state,
        list(untouched),
        cause,
        by,
        at,
    )


async def count_area_points(
    conn: asyncpg.Connection, *, prefixes: Sequence[str], category: str | None
) -> dict[str, int]:
    """How many on-blackout points in service each area (a KATOTTH prefix) holds."""
    rows = await conn.fetch(
        """SELECT p.prefix, count(k.id) AS points FROM unnest($1::text[]) AS p(prefix)
           LEFT JOIN known_points k ON k.katotth LIKE p.prefix || '%' AND k.schedule_kind = 'on_blackout'
                AND NOT k.retired AND ($2::text IS NULL OR k.category = $2)
           GROUP BY p.prefix""",
        list(prefixes),
        category,
    )
    return {r["prefix"]: r["points"] for r in rows}


async def downgrade_stale(
    conn: asyncpg.Connection, *, now: datetime, after_s: dict[str, float], batch: int
) -> list[asyncpg.Record]:
    """Make up to batch open or full points that have not reported for too long unknown; returns the new versions.

    Rows another transaction holds (a report being written) are skipped: that report is about to refresh them.
    """
    return await conn.fetch(
        f"""WITH due AS (
                SELECT s.point_id FROM point_status s JOIN known_points k ON k.id = s.point_id
                WHERE s.state IN ('open', 'full') AND NOT k.retired
                  AND s.reported_at < $1::timestamptz - make_interval(secs => CASE k.category
                      WHEN 'state' THEN $2::float8 WHEN 'business' THEN $3::float8 ELSE $4::float8 END)
                ORDER BY s.reported_at LIMIT $5 FOR UPDATE OF s SKIP LOCKED),
            saved AS (
                UPDATE point_status s SET version = s.version + 1, previous_state = s.state, state = 'unknown',
                    cause = 'stale', changed_at = $1, published_reported_at = s.reported_at
                FROM due WHERE s.point_id = due.point_id
                RETURNING {", ".join(f"s.{c.strip()}" for c in STATUS_COLUMNS.split(","))}),
            {_SAVED_WITH_AREA}""",  # noqa: S608 -- constant columns
        now,
        after_s["state"],
        after_s["business"],
        after_s["essential"],
        batch,
    )


# Coordinators' lists and statistics

ATTENTION_FILTERS = {
    "stale": "s.state = 'unknown' AND s.cause = 'stale'",
    "low_fuel": "s.low_fuel",
    "full": "s.state = 'full'",
}
# Each list's order, most urgent first, as (sort expression, its SQL type) for the keyset cursor.
ATTENTION_ORDER = {
    "stale": ("s.reported_at", "timestamptz"),
    "low_fuel": ("s.fuel_hours", "float8"),
    "full": ("s.changed_at", "timestamptz"),
}


async def attention_list(
    conn: asyncpg.Connection, *, kind: str, like_patterns: Sequence[str], after: tuple[str, UUID] | None, limit: int
) -> list[asyncpg.Record]:
    """Points in service in the areas that need a coordinator's attention, most urgent first, one page."""
    order, sql_type = ATTENTION_ORDER[kind]
    return await conn.fetch(
        f"""SELECT {", ".join(f"s.{c.strip()}" for c in STATUS_COLUMNS.split(","))},
                   k.code, k.name_uk, k.settlement, k.katotth, k.category, {order}::text AS sort_key
            FROM point_status s JOIN known_points k ON k.id = s.point_id
            WHERE {ATTENTION_FILTERS[kind]} AND NOT k.retired AND k.katotth LIKE ANY($1::text[])
              AND ($2::text IS NULL OR ({order}, s.point_id) > ($2::{sql_type}, $3::uuid))
            ORDER BY {order}, s.point_id LIMIT $4""",  # noqa: S608 -- constant filters and orders
        list(like_patterns),
        after[0] if after else None,
        after[1] if after else None,
        limit,
    )


async def states_by_area(
    conn: asyncpg.Connection, *, like_patterns: Sequence[str], digits: int
) -> list[asyncpg.Record]:
    """Points in service per area (the code cut to digits) and state, with how many are low on fuel."""
    return await conn.fetch(
        """SELECT left(k.katotth, $2) AS area, s.state, count(*) AS points,
                  count(*) FILTER (WHERE s.low_fuel) AS low_fuel
           FROM point_status s JOIN known_points k ON k.id = s.point_id
           WHERE NOT k.retired AND k.katotth LIKE ANY($1::text[])
           GROUP BY 1, 2 ORDER BY 1, 2""",
        list(like_patterns),
        digits,
    )


async def visitors_by_day(
    conn: asyncpg.Connection, *, like_patterns: Sequence[str], since: date, until: date
) -> list[asyncpg.Record]:
    """People served per day in the areas, from since to until inclusive."""
    return await conn.fetch(
        """SELECT day, sum(served)::bigint AS served FROM visitors_daily
           WHERE day BETWEEN $2 AND $3 AND katotth LIKE ANY($1::text[])
           GROUP BY day ORDER BY day""",
        list(like_patterns),
        since,
        until,
    )


async def visitors_by_area(
    conn: asyncpg.Connection, *, like_patterns: Sequence[str], since: date, until: date, digits: int
) -> list[asyncpg.Record]:
    """People served per area (the code cut to digits) in the areas, from since to until inclusive."""
    return await conn.fetch(
        """SELECT left(katotth, $4) AS area, sum(served)::bigint AS served FROM visitors_daily
           WHERE day BETWEEN $2 AND $3 AND katotth LIKE ANY($1::text[])
           GROUP BY 1 ORDER BY 1""",
        list(like_patterns),
        since,
        until,
        digits,
    )


async def today(conn: asyncpg.Connection) -> date:
    """Today's date in Ukraine."""
    return await conn.fetchval(f"SELECT (now() AT TIME ZONE '{DAY_ZONE}')::date")
