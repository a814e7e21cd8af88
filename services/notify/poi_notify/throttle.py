"""Abuse limits in Redis: fixed-window counters shared by every replica. Redis down means no request passes."""

from dataclasses import dataclass

import redis.asyncio as redis


@dataclass(frozen=True)
class Limit:
    """At most `limit` requests per `window_s` for one subject (a number's hash, an address, or everyone)."""

    scope: str
    subject: str
    limit: int
    window_s: int


class Throttled(Exception):
    """A limit is reached; retry after retry_after_s."""

    def __init__(self, scope: str, retry_after_s: int) -> None:
        super().__init__(scope)
        self.scope = scope
        self.retry_after_s = retry_after_s


async def count(cache: redis.Redis, namespace: str, action: str, limits: list[Limit]) -> None:
    """Count one request against every limit; Throttled for the first one it exceeds.

    A Redis error propagates (503): these limits stand between the internet and paid SMS, so they fail closed.
    """
    async with cache.pipeline(transaction=False) as pipe:
        for limit in limits:
            key = f"{namespace}:notify:limit:{action}:{limit.scope}:{limit.subject}"
            pipe.set(key, 0, ex=limit.window_s, nx=True)
            pipe.incr(key)
            pipe.ttl(key)
        results = await pipe.execute()
    for i, limit in enumerate(limits):
        used, ttl = results[3 * i + 1], results[3 * i + 2]
        if used > limit.limit:
            raise Throttled(limit.scope, max(int(ttl), 1))
