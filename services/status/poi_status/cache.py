"""Redis holds every point's current status for fast reads; PostgreSQL stays the truth.

Each entry lives at most the cache TTL counted from a moment at which its version was known current in PostgreSQL
(just before the commit that made it, or just before the read that found it). Every later commit comes after that
moment, so an entry outlives any newer commit by less than the TTL: a read never shows a version older than one
committed cache_ttl_s ago. Normally it is fresh at once: after a commit the new version is written, or, if Redis
refuses that write, the entry is deleted (retried), so reads go to PostgreSQL.

Entries are kept, not only filled on demand: a keeper (one replica at a time) rewrites every point's current
status from PostgreSQL every half TTL, which also rebuilds Redis when it starts empty or loses its data.
"""

import logging
import time
from collections.abc import Sequence
from uuid import UUID

import asyncpg
import redis.asyncio as redis
from pydantic import ValidationError
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt, wait_exponential

from poi_shared import db
from poi_shared.contracts import StatusState
from poi_status import data, events

log = logging.getLogger(__name__)
KEEPER_PAGE = 2000

# Set the key, with its TTL, only if it holds an older version: reports commit out of order across replicas, and a
# read may fill the cache with what it read before a newer report committed. The same version was known current
# again at the caller's moment, so it may live until the later of the two expiries; its content is the same.
CACHE_NEWER = """
local current = redis.call('GET', KEYS[1])
if current then
  local ok, decoded = pcall(cjson.decode, current)
  if ok and type(decoded) == 'table' and tonumber(decoded['version']) then
    local held, offered = tonumber(decoded['version']), tonumber(ARGV[1])
    if held > offered then
      return 0
    end
    if held == offered then
      if redis.call('PTTL', KEYS[1]) < tonumber(ARGV[3]) then
        redis.call('PEXPIRE', KEYS[1], ARGV[3])
      end
      return 0
    end
  end
end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
return 1
"""


def redis_key(namespace: str, point_id: UUID) -> str:
    """Where the current status of a point lives in Redis."""
    return f"{namespace}:status:{point_id}"


async def cache_if_newer(cache: redis.Redis, key: str, state: StatusState, *, expires_at: float) -> bool:
    """Cache the state until expires_at (monotonic) unless Redis holds the same or a newer version."""
    ttl_ms = int((expires_at - time.monotonic()) * 1000)
    if ttl_ms <= 0:
        return False
    stored = await cache.eval(CACHE_NEWER, 1, key, state.version, state.model_dump_json(), ttl_ms)
    return bool(stored)


async def cache_many(cache: redis.Redis, namespace: str, states: Sequence[StatusState], *, expires_at: float) -> None:
    """Cache many states in one round trip, each unless Redis holds the same or a newer version."""
    ttl_ms = int((expires_at - time.monotonic()) * 1000)
    if ttl_ms <= 0 or not states:
        return
    script = cache.register_script(CACHE_NEWER)
    async with cache.pipeline(transaction=False) as pipe:
        for state in states:
            await script(
                keys=[redis_key(namespace, state.point_id)],
                args=[state.version, state.model_dump_json(), ttl_ms],
                client=pipe,
            )
        await pipe.execute()


async def cache_committed(
    cache: redis.Redis, namespace: str, states: Sequence[StatusState], *, expires_at: float
) -> None:
    """After a commit: cache the new versions, or else delete the older ones so reads go to PostgreSQL."""
    if not states:
        return
    try:
        if time.monotonic() < expires_at:  # a commit that took longer than the TTL is not cached
            if len(states) == 1:
                await cache_if_newer(cache, redis_key(namespace, states[0].point_id), states[0], expires_at=expires_at)
            else:
                await cache_many(cache, namespace, states, expires_at=expires_at)
            return
    except redis.RedisError as exc:
        log.warning("cannot cache %d statuses, deleting the cached ones: %r", len(states), exc)
    keys = [redis_key(namespace, s.point_id) for s in states]
    try:
        async for attempt in AsyncRetrying(
            stop=stop_after_attempt(3),
            wait=wait_exponential(multiplier=0.05, max=0.2),
            retry=retry_if_exception_type(redis.RedisError),
            reraise=True,
        ):
            with attempt:
                await cache.delete(*keys)
    except redis.RedisError as exc:
        # Still bounded: the older entries expire within the TTL of this commit.
        log.error("cannot delete %d cached statuses; they expire within the cache TTL: %r", len(keys), exc)


async def read_cached(cache: redis.Redis, namespace: str, point_ids: Sequence[UUID]) -> dict[UUID, StatusState]:
    """The cached current status of each point Redis holds (raises RedisError when Redis does not answer)."""
    if not point_ids:
        return {}
    values = await cache.mget([redis_key(namespace, p) for p in point_ids])
    found: dict[UUID, StatusState] = {}
    for point_id, value in zip(point_ids, values, strict=True):
        if value is None:
            continue
        try:
            found[point_id] = StatusState.model_validate_json(value)
        except ValidationError:  # written by another version of the service: read it from PostgreSQL
            continue
    return found


async def keep_filled(pool: asyncpg.Pool, cache: redis.Redis, *, namespace: str, ttl_s: float) -> int:
    """Rewrite every point's current status into Redis from PostgreSQL, unless another replica does; returns how many.

    Equal versions only have their time to live extended, so this costs Redis little when nothing changed.
    """
    written = 0
    async with db.connection(pool) as conn, conn.transaction():
        if not await data.try_job_lock(conn, data.CACHE_KEEPER_LOCK_KEY):
            return 0
        after: UUID | None = None
        while True:
            known_at = time.monotonic()  # before the read: the rows are current at least until then
            rows = await data.current_statuses_after(conn, after=after, limit=KEEPER_PAGE)
            if not rows:
                return written
            await cache_many(cache, namespace, [events.status_state(r) for r in rows], expires_at=known_at + ttl_s)
            written += len(rows)
            after = rows[-1]["point_id"]
