"""The in-memory index of area subscriptions stays current: added, removed, committed late, across replicas."""

import random
from datetime import UTC, datetime, timedelta

import asyncpg
import numpy as np
import pytest

from poi_notify import cells, data, events
from poi_notify.alerts import service as alerts
from poi_notify.alerts.areas import AreaIndex
from poi_shared.contracts import POINT_REGISTERED, STATUS_CHANGED
from tests.integration.notify.conftest import (
    add_phone,
    alert_settings,
    event,
    messages,
    point_state,
    status_state,
    subscribe_area,
)

pytestmark = pytest.mark.integration
NOON = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)  # 12:00 in Kyiv: outside quiet hours
SETTINGS = alert_settings(alert_gather_s=0, alert_window_s=900)
KYIV = (50.4501, 30.5234)


async def look(pool: asyncpg.Pool, index: AreaIndex) -> None:
    async with pool.acquire() as conn:
        await index.refresh(conn)


def holders(index: AreaIndex, lat: float, lon: float, services: tuple[str, ...] = ()) -> list[str]:
    """The phones whose areas hold a point opening at lat, lon now."""
    rows = index.holding(lat, lon, cells.cell_of(lat, lon), services, datetime.now(UTC) + timedelta(minutes=1))
    return index.phones(rows, np.zeros(rows.size, dtype=bool))[0]


async def test_added_and_removed_subscriptions_reach_the_index(pool: asyncpg.Pool) -> None:
    index = AreaIndex()
    await look(pool, index)
    assert len(index) == 0
    near, far, picky = await add_phone(pool), await add_phone(pool), await add_phone(pool)
    await subscribe_area(pool, near, *KYIV, 1000)
    await subscribe_area(pool, far, 49.8397, 24.0297, 3000)  # Lviv
    await subscribe_area(pool, picky, *KYIV, 1000, services=("starlink",))
    await look(pool, index)
    assert len(index) == 3
    assert holders(index, 50.4540, 30.5234) == [near]  # about 430 m north
    assert holders(index, 50.4700, 30.5234) == []  # about 2.2 km: outside
    assert sorted(holders(index, *KYIV, services=("starlink", "heat"))) == sorted([near, picky])
    async with pool.acquire() as conn:
        assert await data.delete_subscriptions(conn, near) == 1
    await look(pool, index)
    assert len(index) == 2
    assert holders(index, *KYIV) == []
    await look(pool, index)  # a look with nothing new changes nothing
    assert len(index) == 2


async def test_the_index_finds_exactly_the_areas_a_scan_of_every_subscription_finds(pool: asyncpg.Pool) -> None:
    # Areas of every size round Kyiv, some removed again: each point is held by exactly the disks it lies in.
    rng = random.Random(7)
    index = AreaIndex()
    areas: dict[str, tuple[float, float, int]] = {}
    for _ in range(300):
        phone = await add_phone(pool)
        lat, lon = KYIV[0] + rng.uniform(-0.08, 0.08), KYIV[1] + rng.uniform(-0.12, 0.12)
        areas[phone] = (lat, lon, rng.randint(300, 5000))
        await subscribe_area(pool, phone, *areas[phone])
    await look(pool, index)
    async with pool.acquire() as conn:
        for phone in rng.sample(sorted(areas), 60):
            await data.delete_subscriptions(conn, phone)
            del areas[phone]
    await look(pool, index)
    for _ in range(60):
        lat, lon = KYIV[0] + rng.uniform(-0.1, 0.1), KYIV[1] + rng.uniform(-0.15, 0.15)
        inside = {p for p, (a, o, radius) in areas.items() if alerts.distance_m(a, o, lat, lon) <= radius}
        assert set(holders(index, lat, lon)) == inside


async def test_a_phone_with_two_areas_is_found_by_either_and_told_once(pool: asyncpg.Pool) -> None:
    index = AreaIndex()
    phone = await add_phone(pool)
    await subscribe_area(pool, phone, *KYIV, 1000)
    await subscribe_area(pool, phone, 49.8397, 24.0297, 1000)  # Lviv too
    await look(pool, index)
    assert holders(index, *KYIV) == [phone] and holders(index, 49.8397, 24.0297) == [phone]
    at, rows = index.of_phones([phone])
    assert at.tolist() == [0, 0] and sorted(index.places(rows)[0].round(4).tolist()) == [49.8397, 50.4501]
    async with pool.acquire() as conn:
        assert await data.delete_subscriptions(conn, phone) == 2
    await look(pool, index)
    assert holders(index, *KYIV) == [] and index.of_phones([phone])[0].size == 0


async def test_a_subscription_committed_after_a_look_began_is_taken_in_at_the_next(pool: asyncpg.Pool) -> None:
    index = AreaIndex()
    await look(pool, index)
    phone = await add_phone(pool)
    async with pool.acquire() as slow:
        transaction = slow.transaction()
        await transaction.start()
        await subscribe_area(slow, phone, *KYIV, 1000)  # type: ignore[arg-type]
        await look(pool, index)  # it is not committed yet: not seen
        assert len(index) == 0
        await transaction.commit()
    await look(pool, index)
    assert holders(index, *KYIV) == [phone]


async def test_a_long_running_planner_hears_of_subscriptions_made_since_it_started(pool: asyncpg.Pool) -> None:
    index = AreaIndex()
    point = point_state()
    await events.handle_point_event(pool, event(POINT_REGISTERED.type, point))
    early, late = await add_phone(pool), await add_phone(pool)
    await subscribe_area(pool, early, point.lat, point.lon, 1000)
    await alerts.plan(pool, SETTINGS, now=NOON, areas=index)  # loads the index with the early one only
    await subscribe_area(pool, late, point.lat, point.lon, 1000)
    async with pool.acquire() as conn:
        await data.delete_subscriptions(conn, early)
    await events.handle_alert_event(pool, event(STATUS_CHANGED.type, status_state(point.id, 1, "open")))
    await alerts.plan(pool, SETTINGS, now=NOON + timedelta(minutes=1), areas=index)
    assert await alerts.flush(pool, SETTINGS, now=NOON + timedelta(minutes=1), areas=index) == 1
    [message] = await messages(pool)
    assert message["phone_hash"] == late
