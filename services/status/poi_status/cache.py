"""Redis holds every point's current status for fast reads; PostgreSQL stays the truth.

Each entry lives at most the cache TTL counted from a moment at which its version was known current in PostgreSQL
(just before the commit that made it, or just before the read that found it). Every later commit comes after that
moment, so an entry outlives any newer commit by less than the TTL: a read never shows a version older than one
committed cache_ttl_s ago. Normally it is fresh at once: after a commit the new version is written, or, if Redis
refuses that write, the entry is deleted (retried), so reads go to PostgreSQL.

Entries are kept, not only filled on demand: a keeper (one replica at a time) goes through every point's current
version in PostgreSQL every half TTL, extends the entries that hold it and writes those that do not, which also
rebuilds Redis when it starts empty or loses its data.

An entry is the version, a line break, and the status as JSON: the scripts compare versions without decoding JSON.
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

# The version an entry holds: the digits before its first line break (none for an entry of another format).
_HELD_VERSION = """
local function held_version(key)
  local current = redis.call('GET', key)
  if not current then return nil end
  return tonumber(string.match(current, '^(%d+)\\n'))
end
"""
# Set the key, with its TTL, only if it holds an older version: reports commit out of order across replicas, and a
# read may fill the cache with what it read before a newer report committed. The same version was known current
# again at the caller's moment, so it may live until the later of the two expiries; its content is the same.
CACHE_NEWER = (
    _HELD_VERSION
    + """
local held, offered = held_version(KEYS[1]), tonumber(ARGV[1])
if held and held > offered then
  return 0
end
if held == offered then
  if redis.call('PTTL', KEYS[1]) < tonumber(ARGV[3]) then
    redis.call('PEXPIRE', KEYS[1], ARGV[3])
  end
  return 0
end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
return 1
"""
)
# CACHE_NEWER for many keys at once: KEYS[i] with ARGV[2i-1] (version) and ARGV[2i] (entry), all with the TTL in
# ARGV[#ARGV]; one command for all, where a pipeline of CACHE_NEWER costs the client a command per key.
CACHE_NEWER_MANY = (
    _HELD_VERSION
    + """
local ttl = ARGV[#ARGV]
local stored = 0
for i, key in ipairs(KEYS) do
  local held, offered = held_version(key), tonumber(ARGV[2 * i - 1])
  if held == offered then
    if redis.call('PTTL', key) < tonumber(ttl) then
      redis.call('PEXPIRE', key, ttl)
    end
  elseif not held or held < offered then
    redis.call('SET', key, ARGV[2 * i], 'PX', ttl)
    stored = stored + 1
  end
end
return stored
"""
)
# The keeper's cheap pass: extend an entry that holds the current version; 1 if the entry is fine as it is (it
# holds that version or a newer one), 0 if it must be written.
EXTEND_CURRENT = (
    _HELD_VERSION
    + """
local held, current = held_version(KEYS[1]), tonumber(ARGV[1])
if not held or held < current then
  return 0
end
if held == current and redis.call('PTTL', KEYS[1]) < tonumber(ARGV[2]) then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 1
"""
)


def redis_key(namespace: str, point_id: UUID) -> str:
    """Where the current status of a point lives in Redis."""
    return f"{namespace}:status:{point_id}"


def encode(state: StatusState) -> bytes:
    """An entry: the version, a line break, the status as JSON."""
    return b"%d\n%s" % (state.version, state.model_dump_json().encode())


def decode(entry: bytes | str) -> StatusState:
    """The status an entry holds; ValueError for anything else."""
    _, newline, document = (entry.encode() if isinstance(entry, str) else entry).partition(b"\n")
    if not newline:
        raise ValueError("not a status entry")
    return StatusState.model_validate_json(document)


async def cache_if_newer(cache: redis.Redis, key: str, state: StatusState, *, expires_at: float) -> bool:
    """Cache the state until expires_at (monotonic) unless Redis holds the same or a newer version."""
    ttl_ms = int((expires_at - time.monotonic()) * 1000)
    if ttl_ms <= 0:
        return False
    stored = await cache.register_script(CACHE_NEWER)(keys=[key], args=[state.version, encode(state), ttl_ms])
    return bool(stored)


async def cache_many(cache: redis.Redis, namespace: str, states: Sequence[StatusState], *, expires_at: float) -> None:
    """Cache many states in one command, each unless Redis holds the same or a newer version."""
    ttl_ms = int((expires_at - time.monotonic()) * 1000)
    if ttl_ms <= 0 or not states:
        return
    args: list[int | bytes] = []
    for state in states:
        args += (state.version, encode(state))
    await cache.register_script(CACHE_NEWER_MANY)(
        keys=[redis_key(namespace, s.point_id) for s in states], args=[*args, ttl_ms]
    )


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
            found[point_id] = decode(value)
        except (ValueError, ValidationError):  # written by another version of the service: read it from PostgreSQL
            continue
    return found


async def keep_filled(pool: asyncpg.Pool, cache: redis.Redis, *, namespace: str, ttl_s: float) -> int:
    """Keep every point's current status in Redis, unless another replica does; returns how many were written.

    Per page of points: their current versions from PostgreSQL, one round trip to Redis extending the entries
    that hold them, then the full status of only those Redis lacked (or held older) read and written.
    """
    written = 0
    async with db.connection(pool) as conn, conn.transaction():
        if not await data.try_job_lock(conn, data.CACHE_KEEPER_LOCK_KEY):
            return 0
        extend = cache.register_script(EXTEND_CURRENT)
        after: UUID | None = None
        while True:
            known_at = time.monotonic()  # before the read: the rows are current at least until then
            rows = await data.current_versions_after(conn, after=after, limit=KEEPER_PAGE)
            if not rows:
                return written
            ttl_ms = int((known_at + ttl_s - time.monotonic()) * 1000)
            if ttl_ms <= 0:  # PostgreSQL answered too slowly for what it said to be current still
                return written
            async with cache.pipeline(transaction=False) as pipe:
                for row in rows:
                    await extend(
                        keys=[redis_key(namespace, row["point_id"])], args=[row["version"], ttl_ms], client=pipe
                    )
                fine = await pipe.execute()
            lacking = [row["point_id"] for row, ok in zip(rows, fine, strict=True) if not ok]
            if lacking:
                states = [events.status_state(r) for r in await data.get_statuses(conn, lacking) if r["version"] > 0]
                await cache_many(cache, namespace, states, expires_at=known_at + ttl_s)
                written += len(states)
            after = rows[-1]["point_id"]
