"""Recording reports: history, current status and event in one transaction; Redis after commit."""

import logging
from datetime import UTC, datetime
from uuid import UUID

import asyncpg
import redis.asyncio as redis
from fastapi import HTTPException

from poi_shared.auth import Principal, forbid
from poi_shared.contracts import StatusState
from poi_status import data, events
from poi_status.reports.models import StatusReport

log = logging.getLogger(__name__)


def redis_key(namespace: str, point_id: UUID) -> str:
    """Where the current status of a point lives in Redis."""
    return f"{namespace}:status:{point_id}"


async def record_report(
    pool: asyncpg.Pool,
    cache: redis.Redis,
    *,
    point_id: UUID,
    report: StatusReport,
    caller: Principal,
    namespace: str,
) -> StatusState:
    """Check the caller may report on the point, then store the report and its event."""
    async with pool.acquire() as conn, conn.transaction():
        point = await data.get_known_point(conn, point_id)
        if point is None:
            raise HTTPException(404, f"no point {point_id} (a newly registered point takes a moment to arrive)")
        if not caller.operates(point_id, point["katotth"]):
            raise forbid(f"your account may not report on point {point_id}")
        if point["retired"]:
            raise HTTPException(409, f"point {point_id} is retired")
        row = await data.save_report(
            conn,
            point_id=point_id,
            state=report.state,
            note=report.note,
            reported_by=caller.subject,
            reported_at=datetime.now(UTC),
        )
        state = events.status_state(row)
        await events.emit_status_changed(conn, namespace=namespace, state=state)
    await _cache(cache, namespace, state)
    return state


async def current_status(
    pool: asyncpg.Pool, cache: redis.Redis, *, point_id: UUID, namespace: str
) -> StatusState | None:
    """The current status from Redis, falling back to PostgreSQL when Redis misses or is down."""
    try:
        cached = await cache.get(redis_key(namespace, point_id))
        if cached:
            return StatusState.model_validate_json(cached)
    except redis.RedisError as exc:
        log.warning("redis unavailable, reading status from postgresql: %r", exc)
    row = await data.get_status(pool, point_id)
    if row is None:
        return None
    state = events.status_state(row)
    await _cache(cache, namespace, state)
    return state


async def is_known(pool: asyncpg.Pool, *, point_id: UUID) -> bool:
    """Whether the registry's events have told status of this point."""
    async with pool.acquire() as conn:
        return await data.get_known_point(conn, point_id) is not None


async def _cache(cache: redis.Redis, namespace: str, state: StatusState) -> None:
    """Best effort: PostgreSQL is the truth, Redis only makes reads fast; keep only newer versions."""
    try:
        await cache.eval(CACHE_NEWER, 1, redis_key(namespace, state.point_id), state.version, state.model_dump_json())
    except redis.RedisError as exc:
        log.warning("cannot cache status of %s: %r", state.point_id, exc)


# Set the key only if it holds an older version (reports can commit out of order across replicas).
CACHE_NEWER = """
local current = redis.call('GET', KEYS[1])
if current then
  local ok, decoded = pcall(cjson.decode, current)
  if ok and tonumber(decoded['version']) >= tonumber(ARGV[1]) then return 0 end
end
redis.call('SET', KEYS[1], ARGV[2])
return 1
"""
