"""Oblast policies: setting one changes, in bounded batches, exactly the points whose effective visibility moves."""

import logging
from typing import Any

import asyncpg

from poi_registry import data, events
from poi_registry.oblasts.extents import extents
from poi_registry.points.service import NotAllowed, history_entry, stored_point
from poi_shared import db, outbox
from poi_shared.auth import Principal, Role
from poi_shared.contracts import POINT_UPDATED, Visibility

log = logging.getLogger(__name__)
SYSTEM_SUBJECT = "registry"  # who history names for changes the registry makes by itself


class UnknownOblast(Exception):
    """Not a KATOTTH oblast-level code."""


async def oblast_policies(pool: asyncpg.Pool, *, caller: Principal) -> list[dict[str, Any]]:
    """Every oblast with the visibility its policy forces, for admins and coordinators."""
    if not caller.has(Role.admin, Role.coordinator):
        raise NotAllowed("only admins and coordinators may read oblast policies")
    async with db.connection(pool) as conn:
        rows = {row["oblast"]: row for row in await data.oblast_policies(conn)}
    return [_policy(code, rows.get(code)) for code in sorted(extents().oblasts)]


def _policy(code: str, row: asyncpg.Record | None) -> dict[str, Any]:
    oblast = extents().oblasts[code]
    return {
        "oblast": code,
        "name_uk": oblast.name_uk,
        "name_en": oblast.name_en,
        "visibility": row["visibility"] if row else Visibility.public.value,
        "set_by": row["set_by"] if row else None,
        "set_at": row["set_at"] if row else None,
    }


async def set_oblast_policy(
    pool: asyncpg.Pool, *, oblast: str, visibility: Visibility, caller: Principal, namespace: str, batch_size: int
) -> dict[str, Any]:
    """Set an oblast's policy (admins only), then bring its points in line; returns the policy and the count."""
    if Role.admin not in caller.roles:
        raise NotAllowed("only admins may set oblast policies")
    if oblast not in extents().oblasts:
        raise UnknownOblast(oblast)
    async with db.connection(pool) as conn, conn.transaction():
        await data.set_oblast_policy(conn, oblast=oblast, visibility=visibility.value, set_by=caller.subject)
        row = next((r for r in await data.oblast_policies(conn) if r["oblast"] == oblast), None)
    changed = await apply_oblast_policy(
        pool,
        oblast=oblast,
        namespace=namespace,
        batch_size=batch_size,
        changed_by=caller.subject,
        reason=f"oblast policy {oblast}: {visibility.value}",
    )
    return {**_policy(oblast, row), "points_changed": changed}


async def apply_oblast_policy(
    pool: asyncpg.Pool, *, oblast: str, namespace: str, batch_size: int, changed_by: str, reason: str
) -> int:
    """Give the oblast's points their effective visibility, batch by batch, each with history and event."""
    changed = 0
    while True:
        async with db.connection(pool) as conn, conn.transaction():
            rows = await data.apply_oblast_policy(conn, oblast=oblast, limit=batch_size)
            points = [stored_point({k: v for k, v in row.items() if k != "old_visibility"}) for row in rows]
            await events.emit_many(conn, namespace=namespace, events=[(POINT_UPDATED, p) for p in points])
            entries = [
                history_entry(point, action="updated", changed_by=changed_by, reason=reason, changes=[change])
                for row, point in zip(rows, points, strict=True)
                for change in [
                    {"field": "effective_visibility", "old": row["old_visibility"], "new": point.effective_visibility}
                ]
            ]
            await data.insert_history(conn, entries)
        if rows:
            outbox.committed()
        changed += len(rows)
        if len(rows) < batch_size:
            return changed


async def apply_pending_policies(pool: asyncpg.Pool, *, namespace: str, batch_size: int) -> int:
    """Finish policy changes that were cut short (e.g. the process stopped mid-way); returns the points changed."""
    async with db.connection(pool) as conn:
        lagging = await data.oblasts_out_of_policy(conn)
    changed = 0
    for oblast in lagging:
        changed += await apply_oblast_policy(
            pool,
            oblast=oblast,
            namespace=namespace,
            batch_size=batch_size,
            changed_by=SYSTEM_SUBJECT,
            reason=f"oblast policy {oblast} (completed)",
        )
    if changed:
        log.info("brought %d points in line with their oblast policies", changed)
    return changed
