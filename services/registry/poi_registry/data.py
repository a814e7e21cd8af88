"""Every SQL statement of the registry.

Statements that vary (the columns a PATCH sets, a list's filters, the columns an import file holds) are put
together from the constant names and fragments below, never from client text; values are always parameters.
"""

import json
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg

POINT_FIELDS = (
    "name_uk",
    "name_en",
    "category",
    "host_type",
    "lat",
    "lon",
    "address_uk",
    "address_en",
    "settlement",
    "katotth",
    "capacity",
    "services",
    "schedule",
    "operator_org",
    "public_phone",
    "contact_phone",
    "visibility",
)
"""The columns clients write (create, update, import); schedule is JSON text, visibility the point's own."""

_CASTS = {"schedule": "::jsonb", "visibility": "::point_visibility", "services": "::text[]"}
_OBLAST_VISIBILITY = "(SELECT o.visibility FROM oblast_policies o WHERE o.oblast = left({p}katotth, 4))"


def point_columns(alias: str = "") -> str:
    """What a statement returns about a point (a StoredPoint's fields), its table optionally aliased."""
    p = f"{alias}." if alias else ""
    own = ", ".join(f"{p}{name}" for name in POINT_FIELDS)
    return (
        f"{p}id, {p}code, {p}version, {own}, {p}effective_visibility,"
        f" {_OBLAST_VISIBILITY.format(p=p)} AS oblast_visibility, {p}created_at, {p}updated_at, {p}retired_at"
    )


POINT_COLUMNS = point_columns()
IMPORT_LOCK_KEY = 0x0B0C7  # one import at a time: rows match by code, and two imports of one code would race


def _check_fields(names: Iterable[str]) -> None:
    unknown = set(names) - set(POINT_FIELDS)
    if unknown:
        raise ValueError(f"not point columns: {sorted(unknown)}")


async def insert_point(conn: asyncpg.Connection, *, point_id: UUID, values: Mapping[str, Any]) -> asyncpg.Record:
    """Store a new point at version 1 with the next registry code of its oblast (NN-000123)."""
    _check_fields(values)
    names = list(POINT_FIELDS)
    params = [values[name] for name in names]
    placeholders = ", ".join(f"${i}{_CASTS.get(name, '')}" for i, name in enumerate(names, start=2))
    vis, katotth = f"${names.index('visibility') + 2}::point_visibility", f"${names.index('katotth') + 2}"
    row = await conn.fetchrow(
        f"""INSERT INTO points (id, code, {", ".join(names)}, effective_visibility)
            SELECT $1, substr({katotth}, 3, 2) || '-' || lpad(seq.n, greatest(6, length(seq.n)), '0'),
                   {placeholders}, effective_visibility({vis}, {katotth})
            FROM (SELECT nextval('point_code_seq')::text AS n) seq
            RETURNING {POINT_COLUMNS}""",  # noqa: S608 -- constant names and fragments only; values are parameters
        point_id,
        *params,
    )
    assert row is not None
    return row


async def get_point(conn: asyncpg.Connection, point_id: UUID, *, for_update: bool = False) -> asyncpg.Record | None:
    """One point, retired or not; locked for the caller's transaction with for_update."""
    lock = " FOR UPDATE" if for_update else ""
    return await conn.fetchrow(f"SELECT {POINT_COLUMNS} FROM points WHERE id = $1{lock}", point_id)  # noqa: S608 -- constant names and fragments only; values are parameters


async def update_point(conn: asyncpg.Connection, *, point_id: UUID, values: Mapping[str, Any]) -> asyncpg.Record:
    """Set some fields, make the next version and recompute the effective visibility."""
    _check_fields(values)
    names = list(values)
    sets = [f"{name} = ${i}{_CASTS.get(name, '')}" for i, name in enumerate(names, start=2)]
    vis = f"${names.index('visibility') + 2}::point_visibility" if "visibility" in values else "visibility"
    katotth = f"${names.index('katotth') + 2}" if "katotth" in values else "katotth"
    row = await conn.fetchrow(
        f"""UPDATE points SET {", ".join(sets)}, effective_visibility = effective_visibility({vis}, {katotth}),
                              version = version + 1, updated_at = now()
            WHERE id = $1
            RETURNING {POINT_COLUMNS}""",  # noqa: S608 -- constant names and fragments only; values are parameters
        point_id,
        *(values[name] for name in names),
    )
    assert row is not None
    return row


async def set_retired(conn: asyncpg.Connection, *, point_id: UUID, retired: bool) -> asyncpg.Record:
    """Retire or restore a point as its next version."""
    row = await conn.fetchrow(
        f"""UPDATE points SET retired_at = CASE WHEN $2 THEN now() END, version = version + 1, updated_at = now()
            WHERE id = $1
            RETURNING {POINT_COLUMNS}""",  # noqa: S608 -- constant names and fragments only; values are parameters
        point_id,
        retired,
    )
    assert row is not None
    return row


async def count_points(conn: asyncpg.Connection) -> int:
    """How many points are registered."""
    return int(await conn.fetchval("SELECT count(*) FROM points"))


def _list_conditions(
    *,
    katotth: str | None,
    category: str | None,
    services: Sequence[str],
    visibility: str | None,
    lifecycle: str,
    changed_since: datetime | None,
    sees_hidden: bool,
    managed_katotth: Sequence[str],
    managed_points: Sequence[UUID],
) -> tuple[list[str], list[Any]]:
    """The WHERE conditions of a list and their parameters, numbered from $1."""
    conditions: list[str] = []
    params: list[Any] = []

    def param(value: Any) -> str:
        params.append(value)
        return f"${len(params)}"

    if katotth:
        conditions.append(f"katotth LIKE {param(katotth)} || '%'")  # digits only: no LIKE wildcards
    if category:
        conditions.append(f"category = {param(category)}")
    if services:
        conditions.append(f"services @> {param(list(services))}::text[]")
    if visibility:
        conditions.append(f"effective_visibility = {param(visibility)}::point_visibility")
    if lifecycle == "active":
        conditions.append("retired_at IS NULL")
    elif lifecycle == "retired":
        conditions.append("retired_at IS NOT NULL")
    if changed_since is not None:
        conditions.append(f"updated_at >= {param(changed_since)}")
    if not sees_hidden:
        prefixes = [f"{prefix}%" for prefix in managed_katotth]
        conditions.append(
            f"(effective_visibility <> 'hidden' OR katotth LIKE ANY({param(prefixes)}::text[])"
            f" OR id = ANY({param(list(managed_points))}::uuid[]))"
        )
    return conditions, params


async def list_points(
    conn: asyncpg.Connection, *, after_code: str | None, limit: int, **filters: Any
) -> tuple[list[asyncpg.Record], int]:
    """One page of points in code order after the given code, and how many match over all pages."""
    conditions, params = _list_conditions(**filters)
    where = " AND ".join(conditions) or "true"
    total = int(await conn.fetchval(f"SELECT count(*) FROM points WHERE {where}", *params))  # noqa: S608 -- constant names and fragments only; values are parameters
    page_conditions = [*conditions, f"code > ${len(params) + 1}"] if after_code is not None else conditions
    page_params = [*params, after_code] if after_code is not None else params
    rows = await conn.fetch(
        f"SELECT {POINT_COLUMNS} FROM points WHERE {' AND '.join(page_conditions) or 'true'}"  # noqa: S608 -- constant names and fragments only; values are parameters
        f" ORDER BY code LIMIT ${len(page_params) + 1}",
        *page_params,
        limit,
    )
    return rows, total


async def public_points(conn: asyncpg.Connection, *, prefetch: int) -> AsyncIterator[asyncpg.Record]:
    """Every active point the public may see, in code order, through a server-side cursor (in a transaction)."""
    query = (
        f"SELECT {POINT_COLUMNS} FROM points"  # noqa: S608 -- a constant column list
        " WHERE retired_at IS NULL AND effective_visibility <> 'hidden' ORDER BY code"
    )
    async for row in conn.cursor(query, prefetch=prefetch):
        yield row


HISTORY_COLUMNS = ("point_id", "version", "action", "changed_by", "changed_at", "reason", "changes")


async def insert_history(conn: asyncpg.Connection, entries: Sequence[tuple[Any, ...]]) -> None:
    """Record versions (tuples in HISTORY_COLUMNS order, changes as JSON text), in one COPY."""
    if entries:
        await conn.copy_records_to_table("point_history", columns=list(HISTORY_COLUMNS), records=entries)


async def get_history(
    conn: asyncpg.Connection, *, point_id: UUID, before: int | None, limit: int
) -> list[asyncpg.Record]:
    """A point's versions, newest first, older than `before` if given."""
    return await conn.fetch(
        """SELECT version, action, changed_by, changed_at, reason, changes FROM point_history
           WHERE point_id = $1 AND ($2::bigint IS NULL OR version < $2) ORDER BY version DESC LIMIT $3""",
        point_id,
        before,
        limit,
    )


async def claim_idempotency_key(
    conn: asyncpg.Connection, *, subject: str, key: str, fingerprint: str, ttl_s: float
) -> bool:
    """Take the key for this request; False if an unexpired one exists (waits for a create in flight with it)."""
    claimed = await conn.fetchval(
        """INSERT INTO idempotency_keys (subject, key, fingerprint) VALUES ($1, $2, $3)
           ON CONFLICT (subject, key) DO UPDATE
               SET fingerprint = EXCLUDED.fingerprint, response = NULL, created_at = now()
               WHERE idempotency_keys.created_at < now() - make_interval(secs => $4)
           RETURNING true""",
        subject,
        key,
        fingerprint,
        ttl_s,
    )
    return bool(claimed)


async def get_idempotency_key(conn: asyncpg.Connection, *, subject: str, key: str) -> asyncpg.Record | None:
    """The stored fingerprint and first response of a key."""
    return await conn.fetchrow(
        "SELECT fingerprint, response FROM idempotency_keys WHERE subject = $1 AND key = $2", subject, key
    )


async def store_idempotent_response(conn: asyncpg.Connection, *, subject: str, key: str, response: str) -> None:
    """Keep the first response (JSON text) of a key."""
    await conn.execute(
        "UPDATE idempotency_keys SET response = $3::jsonb WHERE subject = $1 AND key = $2", subject, key, response
    )


async def prune_idempotency_keys(conn: asyncpg.Connection, *, ttl_s: float) -> int:
    """Forget keys older than the time to live; returns how many."""
    status = await conn.execute(
        "DELETE FROM idempotency_keys WHERE created_at < now() - make_interval(secs => $1)", ttl_s
    )
    return int(status.split()[-1])


async def oblast_policies(conn: asyncpg.Connection) -> list[asyncpg.Record]:
    """Every oblast policy in force."""
    return await conn.fetch("SELECT oblast, visibility, set_by, set_at FROM oblast_policies ORDER BY oblast")


async def set_oblast_policy(conn: asyncpg.Connection, *, oblast: str, visibility: str, set_by: str) -> None:
    """Force at least this visibility on an oblast's points; public lifts the policy."""
    if visibility == "public":
        await conn.execute("DELETE FROM oblast_policies WHERE oblast = $1", oblast)
        return
    await conn.execute(
        """INSERT INTO oblast_policies (oblast, visibility, set_by) VALUES ($1, $2::point_visibility, $3)
           ON CONFLICT (oblast) DO UPDATE SET visibility = EXCLUDED.visibility, set_by = EXCLUDED.set_by,
                                             set_at = now()""",
        oblast,
        visibility,
        set_by,
    )


async def apply_oblast_policy(conn: asyncpg.Connection, *, oblast: str, limit: int) -> list[asyncpg.Record]:
    """Bring up to `limit` points of the oblast to their effective visibility, each as its next version.

    Returns them with their former effective visibility (old_visibility); only points whose visibility changes.
    """
    return await conn.fetch(
        f"""WITH stale AS (
                SELECT id, effective_visibility AS old_visibility FROM points
                WHERE katotth LIKE $1 || '%' AND effective_visibility <> effective_visibility(visibility, katotth)
                ORDER BY code LIMIT $2 FOR UPDATE
            )
            UPDATE points p SET effective_visibility = effective_visibility(p.visibility, p.katotth),
                                version = p.version + 1, updated_at = now()
            FROM stale WHERE p.id = stale.id
            RETURNING {point_columns("p")}, stale.old_visibility""",  # noqa: S608 -- constant names and fragments only; values are parameters
        oblast,
        limit,
    )


async def oblasts_out_of_policy(conn: asyncpg.Connection) -> list[str]:
    """Oblasts holding points whose effective visibility lags their policy (a policy change cut short)."""
    rows = await conn.fetch(
        """SELECT DISTINCT left(katotth, 4) AS oblast FROM points
           WHERE effective_visibility <> effective_visibility(visibility, katotth) ORDER BY 1"""
    )
    return [row["oblast"] for row in rows]


_IMPORT_TYPES = {
    "name_uk": "text",
    "name_en": "text",
    "category": "text",
    "host_type": "text",
    "lat": "double precision",
    "lon": "double precision",
    "address_uk": "text",
    "address_en": "text",
    "settlement": "text",
    "katotth": "text",
    "capacity": "integer",
    "services": "text[]",
    "schedule": "jsonb",
    "operator_org": "text",
    "public_phone": "text",
    "contact_phone": "text",
    "visibility": "point_visibility",
}
IMPORT_COLUMNS = ("row_no", "code", *POINT_FIELDS)


async def begin_import(conn: asyncpg.Connection) -> None:
    """Wait for any other import to finish (held until the caller's transaction ends); no JIT for its statements.

    The staged rows have no statistics, so the planner overestimates the joins and JIT-compiles them: seconds
    spent compiling what runs in milliseconds.
    """
    await conn.execute("SELECT pg_advisory_xact_lock($1)", IMPORT_LOCK_KEY)
    await conn.execute("SET LOCAL jit = off")


async def stage_import(conn: asyncpg.Connection, records: Sequence[tuple[Any, ...]]) -> None:
    """Copy validated rows (tuples in IMPORT_COLUMNS order) into a temporary table dropped at commit."""
    columns = ", ".join(f"{name} {_IMPORT_TYPES[name]}" for name in POINT_FIELDS)
    await conn.execute(f"CREATE TEMPORARY TABLE import_rows (row_no integer, code text, {columns}) ON COMMIT DROP")
    await conn.copy_records_to_table("import_rows", columns=list(IMPORT_COLUMNS), records=records)


async def staged_matches(conn: asyncpg.Connection) -> list[asyncpg.Record]:
    """Rows whose code is registered, with the point's id, KATOTTH code and retirement."""
    return await conn.fetch(
        """SELECT t.row_no, p.id, p.katotth, p.retired_at IS NOT NULL AS retired
           FROM import_rows t JOIN points p ON p.code = t.code"""
    )


async def unstage(conn: asyncpg.Connection, row_numbers: Sequence[int]) -> None:
    """Leave out rows that failed (a partial import)."""
    await conn.execute("DELETE FROM import_rows WHERE row_no = ANY($1::integer[])", list(row_numbers))


async def update_staged(
    conn: asyncpg.Connection, *, columns: Sequence[str]
) -> tuple[list[asyncpg.Record], list[asyncpg.Record]]:
    """Write the given columns of staged rows into their points where any differs; each as its next version.

    Returns the changed points as they were and as they are, both in id order; unchanged points are not touched.
    """
    _check_fields(columns)
    differs = f"({', '.join(f'p.{n}' for n in columns)}) IS DISTINCT FROM ({', '.join(f't.{n}' for n in columns)})"
    old = await conn.fetch(
        f"""SELECT {point_columns("p")} FROM points p JOIN import_rows t ON t.code = p.code
            WHERE {differs} ORDER BY p.id FOR UPDATE OF p"""  # noqa: S608 -- constant names and fragments only; values are parameters
    )
    if not old:
        return [], []
    sets = ", ".join(f"{name} = t.{name}" for name in columns)
    vis = "t.visibility" if "visibility" in columns else "p.visibility"
    katotth = "t.katotth" if "katotth" in columns else "p.katotth"
    new = await conn.fetch(
        f"""WITH changed AS (
                UPDATE points p SET {sets}, effective_visibility = effective_visibility({vis}, {katotth}),
                                    version = p.version + 1, updated_at = now()
                FROM import_rows t WHERE t.code = p.code AND p.id = ANY($1::uuid[])
                RETURNING p.*
            )
            SELECT {point_columns("changed")} FROM changed ORDER BY id""",  # noqa: S608 -- constant names and fragments only; values are parameters
        [row["id"] for row in old],
    )
    return old, new


async def insert_staged(conn: asyncpg.Connection) -> list[asyncpg.Record]:
    """Register the staged rows whose code is new, at version 1."""
    own = ", ".join(POINT_FIELDS)
    return await conn.fetch(
        f"""INSERT INTO points (id, code, {own}, effective_visibility)
            SELECT gen_random_uuid(), t.code, {", ".join(f"t.{n}" for n in POINT_FIELDS)},
                   effective_visibility(t.visibility, t.katotth)
            FROM import_rows t WHERE NOT EXISTS (SELECT 1 FROM points p WHERE p.code = t.code)
            RETURNING {POINT_COLUMNS}"""  # noqa: S608 -- constant names and fragments only; values are parameters
    )


def schedule_json(schedule: dict[str, Any]) -> str:
    """A schedule as the JSON text its column takes."""
    return json.dumps(schedule, ensure_ascii=False)
