"""The stale sweep: an open or full point that has not reported for its category's time becomes unknown.

Only claims that a point takes people go stale: a closed or standby point sends nobody anywhere, and keeps its
state until someone changes it. The sweep runs on one replica at a time (an advisory lock), in bounded batches,
each batch one transaction with its `stale` events.
"""

import time
from datetime import UTC, datetime

import asyncpg
import redis.asyncio as redis

from poi_shared import db
from poi_shared.contracts import PointCategory
from poi_shared.outbox import committed, enqueue_many
from poi_status import cache, data, events
from poi_status.settings import StatusSettings


async def downgrade_stale(pool: asyncpg.Pool, redis_client: redis.Redis, *, settings: StatusSettings) -> int:
    """Downgrade every point due, batch by batch, unless another replica sweeps; returns how many."""
    after_s = {c.value: settings.stale_after_s(c) for c in PointCategory}
    downgraded = 0
    while True:
        known_at = time.monotonic()
        async with db.connection(pool) as conn, conn.transaction():
            if not await data.try_job_lock(conn, data.STALE_LOCK_KEY):
                return downgraded
            rows = await data.downgrade_stale(conn, now=datetime.now(UTC), after_s=after_s, batch=settings.stale_batch)
            states = [events.status_state(r) for r in rows]
            await enqueue_many(conn, [events.stale_message(settings.namespace, s) for s in states])
        if states:
            committed()
        await cache.cache_committed(
            redis_client, settings.namespace, states, expires_at=known_at + settings.cache_ttl_s
        )
        downgraded += len(rows)
        if len(rows) < settings.stale_batch:
            return downgraded
