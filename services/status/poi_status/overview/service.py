"""Coordinators' lists and statistics, within the caller's scope."""

import base64
import binascii
import json
from datetime import date, datetime
from uuid import UUID

import asyncpg

from poi_shared import db
from poi_shared.auth import Principal, Role
from poi_shared.contracts import OpenState
from poi_status import data
from poi_status.overview.models import (
    LEVEL_DIGITS,
    AreaLevel,
    AreaStates,
    AreaVisitors,
    AttentionItem,
    AttentionKind,
    AttentionPage,
    DayVisitors,
    StateCounts,
    Visitors,
)

NATION = "UA"


class NotAllowed(Exception):
    """The caller is not a coordinator or admin, or the area is outside their scope."""


class BadCursor(Exception):
    """A cursor this service did not give out."""


def scope_patterns(caller: Principal, katotth: str | None) -> list[str]:
    """LIKE patterns for the areas the caller asks about: the one given, else all of their scope."""
    if not caller.has(Role.admin, Role.coordinator):
        raise NotAllowed("lists and statistics are for coordinators and admins")
    if katotth is not None:
        if not caller.coordinates(katotth):
            raise NotAllowed(f"your scope does not cover {katotth}")
        return [f"{katotth}%"]
    if caller.has(Role.admin):
        return ["%"]
    return [f"{prefix}%" for prefix in caller.katotth]


def encode_cursor(sort_key: str, point_id: UUID) -> str:
    """An opaque cursor: where the page ended."""
    return base64.urlsafe_b64encode(json.dumps([sort_key, str(point_id)]).encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[str, UUID]:
    """The position a cursor holds; BadCursor for anything else."""
    try:
        sort_key, point_id = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        return str(sort_key), UUID(point_id)
    except (ValueError, TypeError, binascii.Error) as exc:
        raise BadCursor("not a cursor from a previous page") from exc


async def attention_page(
    pool: asyncpg.Pool,
    *,
    kind: AttentionKind,
    patterns: list[str],
    cursor: str | None,
    limit: int,
    now: datetime,
) -> AttentionPage:
    """One page of the points of the kind in the areas, most urgent first."""
    after = decode_cursor(cursor) if cursor else None
    async with db.connection(pool) as conn:
        try:
            rows = await data.attention_list(conn, kind=kind.value, like_patterns=patterns, after=after, limit=limit)
        except (asyncpg.DataError, asyncpg.InvalidTextRepresentationError) as exc:
            raise BadCursor("not a cursor from a previous page") from exc
    items = [
        AttentionItem(
            **{k: row[k] for k in AttentionItem.model_fields if k not in ("age_s",)},
            age_s=int((now - row["reported_at"]).total_seconds()) if row["reported_at"] else None,
        )
        for row in rows
    ]
    more = len(rows) == limit
    return AttentionPage(
        kind=kind,
        items=items,
        next_cursor=encode_cursor(rows[-1]["sort_key"], rows[-1]["point_id"]) if more else None,
    )


async def state_counts(pool: asyncpg.Pool, *, patterns: list[str], by: AreaLevel, label: str) -> StateCounts:
    """Points in service per area and state, and the total (labelled as the area asked for)."""
    async with db.connection(pool) as conn:
        rows = await data.states_by_area(conn, like_patterns=patterns, digits=LEVEL_DIGITS[by])
    areas: dict[str, AreaStates] = {}
    total = AreaStates(katotth=label, points=0, states={s: 0 for s in OpenState}, low_fuel=0)
    for row in rows:
        area = areas.setdefault(
            row["area"], AreaStates(katotth=row["area"], points=0, states={s: 0 for s in OpenState}, low_fuel=0)
        )
        for counts in (area, total):
            counts.points += row["points"]
            counts.states[OpenState(row["state"])] += row["points"]
            counts.low_fuel += row["low_fuel"]
    return StateCounts(by=by, areas=list(areas.values()), total=total)


async def visitors(
    pool: asyncpg.Pool, *, patterns: list[str], since: date | None, until: date | None, by: AreaLevel
) -> Visitors:
    """People served from since (1 January of until's year by default) to until (today by default), inclusive."""
    async with db.connection(pool) as conn:
        until = until or await data.today(conn)
        since = since or date(until.year, 1, 1)
        days = await data.visitors_by_day(conn, like_patterns=patterns, since=since, until=until)
        areas = await data.visitors_by_area(
            conn, like_patterns=patterns, since=since, until=until, digits=LEVEL_DIGITS[by]
        )
    return Visitors(
        since=since,
        until=until,
        by=by,
        total=sum(r["served"] for r in days),
        days=[DayVisitors(day=r["day"], served=r["served"]) for r in days],
        areas=[AreaVisitors(katotth=r["area"], served=r["served"]) for r in areas],
    )
