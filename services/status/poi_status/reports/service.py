"""Recording reports: history, current status and event in one transaction; Redis after commit.

Redis holds each point's current status for fast reads, never longer than the cache TTL counted from a moment at
which the status was known current in PostgreSQL (just before the report's commit, or just before the read that
filled the cache). Every later commit comes after that moment, so an entry outlives any newer commit by less than
the TTL: a read never shows a version older than one committed cache_ttl_s ago. Normally it is fresh at once: after
the commit the new version is written, or, if Redis refuses that write, the entry is deleted (retried).
"""

import logging
import time
from datetime import UTC, datetime
from uuid import UUID

import asyncpg
import redis.asyncio as redis
from fastapi import HTTPException
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt, wait_exponential

from poi_shared import db
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
    cache_ttl_s: float,
) -> StatusState:
    """Check the caller may report on the point, then store the report and its event."""
    known_at = time.monotonic()  # before the commit, so the cached entry expires within the TTL of any later one
    async with db.connection(pool) as conn, conn.transaction():
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
    await _cache_committed(cache, redis_key(namespace, point_id), state, expires_at=known_at + cache_ttl_s)
    return state


async def current_status(
    pool: asyncpg.Pool, cache: redis.Redis, *, point_id: UUID, namespace: str, cache_ttl_s: float
) -> StatusState | None:
    """The current status from Redis, falling back to PostgreSQL when Redis misses or is down."""
    key = redis_key(namespace, point_id)
    try:
        cached = await cache.get(key)
        if cached:
            return StatusState.model_validate_json(cached)
    except redis.RedisError as exc:
        log.warning("redis unavailable, reading status from postgresql: %r", exc)
    known_at = time.monotonic()
    async with db.connection(pool) as conn:
        row = await data.get_status(conn, point_id)
    if row is None:
        return None
    state = events.status_state(row)
    try:
        await cache_if_newer(cache, key, state, expires_at=known_at + cache_ttl_s)
    except redis.RedisError as exc:  # a miss stays a miss: the next read goes to PostgreSQL again
        log.warning("cannot cache status of %s: %r", point_id, exc)
    return state


async def is_known(pool: asyncpg.Pool, *, point_id: UUID) -> bool:
    """Whether the registry's events have told status of this point."""
    async with db.connection(pool) as conn:
        return await data.get_known_point(conn, point_id) is not None


async def cache_if_newer(cache: redis.Redis, key: str, state: StatusState, *, expires_at: float) -> bool:
    """Cache the state until expires_at (monotonic) unless Redis holds the same or a newer version."""
    ttl_ms = int((expires_at - time.monotonic()) * 1000)
    if ttl_ms <= 0:
        return False
    stored = await cache.eval(CACHE_NEWER, 1, key, state.version, state.model_dump_json(), ttl_ms)
    return bool(stored)


async def _cache_committed(cache: redis.Redis, key: str, state: StatusState, *, expires_at: float) -> None:
    """After the commit: cache the new version, or else delete the older one so reads go to PostgreSQL."""
    try:
        if time.monotonic() < expires_at:  # a commit that took longer than the TTL is not cached
            await cache_if_newer(cache, key, state, expires_at=expires_at)
            return
    except redis.RedisError as exc:
        log.warning("cannot cache status of %s, deleting the cached one: %r", state.point_id, exc)
    try:
        async for attempt in AsyncRetrying(
            stop=stop_after_attempt(3),
            wait=wait_exponential(multiplier=0.05, max=0.2),
            retry=retry_if_exception_type(redis.RedisError),
            reraise=True,
        ):
            with attempt:
                await cache.delete(key)
    except redis.RedisError as exc:
        # Still bounded: the older entry expires within the TTL of this commit.
        log.error("cannot delete cached status of %s; it expires within the cache TTL: %r", state.point_id, exc)


# Set the key, with its TTL, only if it holds an older version (reports commit out of order across replicas, and a
# read may fill the cache with what it read before a newer report committed). Equal versions leave the key alone.
CACHE_NEWER = """
local current = redis.call('GET', KEYS[1])
if current then
  local ok, decoded = pcall(cjson.decode, current)
  if ok and type(decoded) == 'table' and tonumber(decoded['version']) and
     tonumber(decoded['version']) >= tonumber(ARGV[1]) then
    return 0
  end
end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
return 1
"""
