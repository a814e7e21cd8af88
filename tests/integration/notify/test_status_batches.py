"""A fetch of status events handled together (the consumers' batch handlers) does what one at a time does."""

import uuid

import asyncpg
import pytest

from poi_notify import events
from poi_shared.contracts import STATUS_CHANGED, STATUS_LOW_FUEL
from tests.integration.notify.conftest import event, status_state

pytestmark = pytest.mark.integration


async def test_observations_of_a_fetch_are_recorded_once_each(pool: asyncpg.Pool) -> None:
    point_id = uuid.uuid4()
    fetched = [event(STATUS_CHANGED.type, status_state(point_id, v, "open")) for v in (1, 2, 3)]
    await events.handle_status_events(pool, [fetched[0], fetched[1], fetched[0], fetched[2]])
    await events.handle_status_events(pool, fetched[1:])  # delivered again: nothing new
    rows = await pool.fetch("SELECT event_id, version FROM status_observations WHERE point_id = $1", point_id)
    assert sorted((r["event_id"], r["version"]) for r in rows) == sorted((e.id, e.data.version) for e in fetched)


async def test_alerts_of_a_fetch_are_what_one_event_at_a_time_makes(pool: asyncpg.Pool) -> None:
    alone, together = uuid.uuid4(), uuid.uuid4()

    def story(point_id: uuid.UUID) -> list:
        return [
            event(STATUS_CHANGED.type, status_state(point_id, 1, "open")),
            event(STATUS_CHANGED.type, status_state(point_id, 2, "closed")),
            event(STATUS_LOW_FUEL.type, status_state(point_id, 2, "closed", fuel_hours=2.0, low_fuel=True)),
            event(STATUS_CHANGED.type, status_state(point_id, 4, "full")),
            event(STATUS_CHANGED.type, status_state(point_id, 3, "open")),  # older than what is current: no news
        ]

    one_by_one = story(alone)
    for each in one_by_one:
        await events.handle_alert_event(pool, each)
    batch = story(together)
    await events.handle_alert_events(pool, [*batch[:2], batch[0], *batch[2:]])  # one event twice in the fetch
    await events.handle_alert_events(pool, batch)  # the whole fetch delivered again

    async def made(point_id: uuid.UUID) -> tuple:
        current = await pool.fetchrow("SELECT state, status_version FROM alert_points WHERE id = $1", point_id)
        queued = await pool.fetch(
            "SELECT status_version, change, urgent FROM alert_queue WHERE point_id = $1 ORDER BY id", point_id
        )
        return tuple(current or ()), [tuple(r) for r in queued]

    assert await made(together) == await made(alone)
    assert (await made(alone))[1], "the story queued news"
