"""Switching areas: every on-blackout point of the areas in one statement, each with its own event.

Points already in the target state are left alone and get no event, so a repeated request changes nothing. Open
and full points are not put on standby by an activation, nor is a full point reopened.
"""

import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

import asyncpg
import redis.asyncio as redis

from poi_shared import db
from poi_shared.auth import Principal
from poi_shared.contracts import AreaAction, AreaActivation, OpenState, PointCategory, StatusCause
from poi_shared.envelope import OutgoingMessage
from poi_shared.outbox import committed, enqueue_many
from poi_status import cache, data, events
from poi_status.settings import StatusSettings

# The states a switch leaves as they are, by the state it puts points in.
UNTOUCHED = {
    OpenState.open: (OpenState.open, OpenState.full),
    OpenState.standby: (OpenState.open, OpenState.full, OpenState.standby),
    OpenState.closed: (OpenState.closed,),
}


class NotAllowed(Exception):
    """The caller's scope does not cover an area."""


@dataclass(frozen=True)
class AreaResult:
    """One area's switch."""

    katotth_prefix: str
    points_in_area: int
    points_changed: int
    event_id: str | None


def distinct_areas(prefixes: list[str]) -> list[str]:
    """The areas once each, leaving out any that another of them contains, in the order given."""
    unique = list(dict.fromkeys(prefixes))
    return [p for p in unique if not any(p != q and p.startswith(q) for q in unique)]


async def switch_areas(
    pool: asyncpg.Pool,
    redis_client: redis.Redis,
    *,
    action: AreaAction,
    prefixes: list[str],
    category: PointCategory | None,
    state: OpenState,
    caller: Principal,
    settings: StatusSettings,
) -> list[AreaResult]:
    """Put the areas' on-blackout points in state, with a changed event each and one area event per area."""
    areas = distinct_areas(prefixes)
    outside = [p for p in areas if not caller.coordinates(p)]
    if outside:
        raise NotAllowed(f"your scope does not cover {', '.join(outside)}")
    cause = StatusCause.activation if action == AreaAction.activate else StatusCause.deactivation
    category_value = category.value if category else None
    known_at, now = time.monotonic(), datetime.now(UTC)
    async with db.connection(pool) as conn, conn.transaction():
        rows = await data.switch_area(
            conn,
            like_patterns=[f"{p}%" for p in areas],
            category=category_value,
            state=state.value,
            untouched=[s.value for s in UNTOUCHED[state]],
            cause=cause.value,
            by=caller.subject,
            at=now,
        )
        in_area = await data.count_area_points(conn, prefixes=areas, category=category_value)
        states = [events.status_state(r) for r in rows]
        messages: list[OutgoingMessage] = [events.changed_message(settings.namespace, s) for s in states]
        results = []
        for prefix in areas:
            changed = sum(1 for r in rows if r["katotth"].startswith(prefix))
            event_id = None
            if changed:
                activation = AreaActivation(
                    id=uuid.uuid4(),
                    action=action,
                    katotth_prefix=prefix,
                    category=category,
                    state=state,
                    points_changed=changed,
                    requested_by=caller.subject,
                    requested_at=now,
                )
                message = events.area_message(settings.namespace, activation)
                messages.append(message)
                event_id = message.event_id
            results.append(AreaResult(prefix, in_area.get(prefix, 0), changed, event_id))
        await enqueue_many(conn, messages)
    if messages:
        committed()
    await cache.cache_committed(redis_client, settings.namespace, states, expires_at=known_at + settings.cache_ttl_s)
    return results
