"""Alerts against a real PostgreSQL: who hears of a change, one message per phone per window, quiet hours, ops.

Time is passed in (plan and flush take `now`), so windows and quiet hours are tested without waiting.
"""

import uuid
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from poi_notify import data, events
from poi_notify.alerts import service as alerts
from poi_notify.alerts.areas import AreaIndex
from poi_shared.contracts import (
    POINT_REGISTERED,
    POINT_RETIRED,
    POINT_UPDATED,
    STATUS_CHANGED,
    STATUS_LOW_FUEL,
    STATUS_STALE,
    PointState,
)
from tests.integration.notify.conftest import (
    LVIV_CODE,
    add_phone,
    alert_settings,
    event,
    messages,
    point_state,
    status_state,
    subscribe_area,
    subscribe_point,
)

pytestmark = pytest.mark.integration
NOON = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)  # 12:00 in Kyiv: outside quiet hours
NIGHT = datetime(2026, 11, 26, 21, 30, tzinfo=UTC)  # 23:30 in Kyiv: quiet hours until 07:00 (05:00 UTC)
SETTINGS = alert_settings(alert_gather_s=30, alert_window_s=900)
# About 1.2 km from the default point (the Lyceum on Khreshchatyk): the second nearest to a home beside it.
LIBRARY = {
    "lat": 50.4560,
    "lon": 30.5300,
    "name_uk": "Бібліотека ім. Лесі Українки, Київ",
    "address_uk": "вул. Велика Житомирська, 4, Київ",
    "name_en": "Lesya Ukrainka Library, Kyiv",
    "address_en": "4 Velyka Zhytomyrska St, Kyiv",
}


async def learn(pool: asyncpg.Pool, point: PointState) -> PointState:
    """notify hears of the point from the registry."""
    await events.handle_point_event(pool, event(POINT_REGISTERED.type, point))
    return point


async def report(pool: asyncpg.Pool, point_id: uuid.UUID, version: int, state: str, **changes: object) -> None:
    """A status event for the point."""
    await events.handle_alert_event(pool, event(STATUS_CHANGED.type, status_state(point_id, version, state, **changes)))


async def run(pool: asyncpg.Pool, now: datetime, settings=SETTINGS, areas=None) -> int:  # type: ignore[no-untyped-def]
    """Plan, then flush whatever is due at now; how many messages were queued.

    areas: a replica's index of area subscriptions, kept between calls as the service keeps it (else a new one).
    """
    await alerts.plan(pool, settings, now=now, areas=areas)
    return await alerts.flush(pool, settings, now=now, areas=areas)


async def test_point_subscribers_hear_opened_closed_full_and_places_again(pool: asyncpg.Pool) -> None:
    point = await learn(pool, point_state())
    phone = await add_phone(pool)
    await subscribe_point(pool, phone, point.id)
    now = NOON
    expected = [("open", "ВІДКРИТО"), ("full", "НЕМАЄ МІСЦЬ"), ("open", "Є МІСЦЯ"), ("closed", "ЗАЧИНЕНО")]
    for version, (state, word) in enumerate(expected, start=1):
        await report(pool, point.id, version, state)
        assert await run(pool, now) == 0, "the first change waits alert_gather_s for more"
        now += timedelta(seconds=SETTINGS.alert_window_s)
        assert await run(pool, now) == 1
        body = (await messages(pool, phone))[-1]["body"]
        assert body.startswith(word) and "Ліцей №5, вул. Хрещатик, 1" in body, body
    sent = await messages(pool, phone)
    assert len(sent) == 4 and all(m["parts"] == 1 and m["kind"] == "alert" for m in sent)


async def test_no_news_for_standby_unknown_or_the_same_state(pool: asyncpg.Pool) -> None:
    point = await learn(pool, point_state())
    phone = await add_phone(pool)
    await subscribe_point(pool, phone, point.id)
    await report(pool, point.id, 1, "standby")
    await report(pool, point.id, 2, "unknown")
    await report(pool, point.id, 3, "standby")
    assert await run(pool, NOON + timedelta(hours=1)) == 0
    assert await messages(pool) == []


async def test_area_subscriber_gets_one_message_naming_the_nearest_open_points(pool: asyncpg.Pool) -> None:
    # A resident near Khreshchatyk follows 2 km round home, only points with heat.
    home = (50.4470, 30.5220)
    near = await learn(pool, point_state(lat=50.4480, lon=30.5225, name_uk="Пункт незламності — Ліцей №5, Київ"))
    farther = await learn(pool, point_state(**LIBRARY))
    no_heat = await learn(pool, point_state(lat=50.4472, lon=30.5221, services=["charging"]))
    outside = await learn(pool, point_state(lat=50.4800, lon=30.5800))  # about 5 km away
    resident = await add_phone(pool)
    await subscribe_area(pool, resident, *home, 2000, services=("heat",))
    stranger = await add_phone(pool)  # follows an area in Lviv
    await subscribe_area(pool, stranger, 49.8397, 24.0297, 3000)
    for point in (farther, near, no_heat, outside):
        await report(pool, point.id, 1, "open", cause="activation")
    assert await run(pool, NOON) == 0
    assert await run(pool, NOON + timedelta(seconds=30)) == 1
    [message] = await messages(pool)
    assert message["phone_hash"] == resident and message["parts"] == 1
    body = message["body"]
    assert body.startswith("Відкрито поруч: Ліцей №5, вул. Хрещатик, 1"), body
    # The farther one is counted (named too where it fits); the one without heat and the one outside are not.
    assert body == "Відкрито поруч: Ліцей №5, вул. Хрещатик, 1 (тепло); ще 1 поруч", body
    # Closing the nearest one later is news only to those who follow it, not to the area.
    await report(pool, near.id, 2, "closed")
    assert await run(pool, NOON + timedelta(hours=1)) == 0


async def test_each_phone_gets_its_own_areas_text_and_phones_told_the_same_share_it(pool: asyncpg.Pool) -> None:
    # The flusher composes one text per group of windows told the same points; the others are composed one by one.
    home, obolon = (50.4470, 30.5220), (50.5010, 30.4980)
    lyceum = await learn(pool, point_state(lat=50.4480, lon=30.5225))
    library = await learn(pool, point_state(**LIBRARY))
    gym = await learn(
        pool,
        point_state(
            lat=50.5012,
            lon=30.4982,
            name_uk="Спортзал, Київ",
            address_uk="просп. Оболонський, 9, Київ",
            name_en="Gym, Kyiv",
            address_en="9 Obolonskyi Ave, Kyiv",
        ),
    )
    neighbours = [await add_phone(pool) for _ in range(3)]
    english = await add_phone(pool, language="en")
    two_areas = await add_phone(pool)
    follower = await add_phone(pool)
    for phone in (*neighbours, english, two_areas, follower):
        await subscribe_area(pool, phone, *home, 2000)
    # The same nearest point, but only it within 500 m: the text names it without counting another.
    close_by = await add_phone(pool)
    await subscribe_area(pool, close_by, *home, 500)
    await subscribe_area(pool, two_areas, *obolon, 1000)
    await subscribe_point(pool, follower, library.id)
    for point in (lyceum, library, gym):
        await report(pool, point.id, 1, "open", cause="activation")
    assert await run(pool, NOON) == 0
    assert await run(pool, NOON + timedelta(seconds=30)) == 7
    body = {m["phone_hash"]: m["body"] for m in await messages(pool)}
    assert [body[n] for n in neighbours] == ["Відкрито поруч: Ліцей №5, вул. Хрещатик, 1 (тепло); ще 1 поруч"] * 3
    assert body[close_by] == "Відкрито поруч: Ліцей №5, вул. Хрещатик, 1, Київ (тепло, зарядка)"
    assert body[english] == (
        "Open near you: Lyceum No. 5, 1 Khreshchatyk St, Kyiv (heat, charging); "
        "Lesya Ukrainka Library, 4 Velyka Zhytomyrska St, Kyiv (heat, charging)"
    )
    # Two areas: the nearest open points of both, nearest first (the gym is next to the second home).
    assert body[two_areas] == "Відкрито поруч: Спортзал, просп. Оболонський, 9 (тепло); ще 2 поруч"
    # A followed point is told as such, and not named again among the points near home.
    assert body[follower] == (
        "ВІДКРИТО: Бібліотека ім. Лесі Українки, вул. Велика Житомирська, 4, Київ. "
        "Відкрито поруч: Ліцей №5, вул. Хрещатик, 1, Київ (тепло, зарядка)"
    )


async def test_area_message_in_english_uses_english_names(pool: asyncpg.Pool) -> None:
    point = await learn(pool, point_state())
    phone = await add_phone(pool, language="en")
    await subscribe_area(pool, phone, point.lat, point.lon, 1000)
    await report(pool, point.id, 1, "open", cause="activation")
    assert await run(pool, NOON + timedelta(minutes=1), alert_settings(alert_gather_s=0)) == 1
    [message] = await messages(pool)
    assert message["body"] == "Open near you: Lyceum No. 5, 1 Khreshchatyk St, Kyiv (heat, charging)"


async def test_an_area_message_names_a_point_as_it_is_when_sent_even_after_an_earlier_text_named_it(
    pool: asyncpg.Pool,
) -> None:
    # Area texts are kept from one flush to the next, by what they name: a point renamed since is told by its new name.
    point = await learn(pool, point_state())
    first = await add_phone(pool)
    await subscribe_area(pool, first, point.lat, point.lon, 2000)
    await report(pool, point.id, 1, "open", cause="activation")
    assert await run(pool, NOON) == 0
    assert await run(pool, NOON + timedelta(seconds=30)) == 1
    await events.handle_point_event(
        pool, event(POINT_UPDATED.type, point.model_copy(update={"name_uk": "Ліцей №7, Київ", "version": 2}))
    )
    second = await add_phone(pool)
    await subscribe_area(pool, second, point.lat, point.lon, 2000)
    await report(pool, point.id, 2, "closed")
    await report(pool, point.id, 3, "open", cause="activation")
    assert await run(pool, NOON + timedelta(seconds=60)) == 0
    assert await run(pool, NOON + timedelta(seconds=90)) == 1  # the first phone's next window is 15 minutes on
    assert await run(pool, NOON + timedelta(seconds=30 + 900)) == 1
    before, after = await messages(pool, first)
    assert "Ліцей №5" in before["body"]
    [told] = await messages(pool, second)
    for message in (after, told):
        assert "Ліцей №7" in message["body"] and "Ліцей №5" not in message["body"], message["body"]


async def test_never_two_sms_to_one_phone_in_a_window_changes_are_merged(pool: asyncpg.Pool) -> None:
    a = await learn(pool, point_state(name_uk="Ліцей №5, Київ"))
    b = await learn(pool, point_state(name_uk="Гімназія №2, Київ", address_uk="вул. Лютеранська, 3, Київ"))
    phone = await add_phone(pool)
    for point in (a, b):
        await subscribe_point(pool, phone, point.id)
    await report(pool, a.id, 1, "open")
    await alerts.plan(pool, SETTINGS, now=NOON)
    assert await alerts.flush(pool, SETTINGS, now=NOON + timedelta(seconds=30)) == 1
    # Within the next 15 minutes: b opens, a fills up, then b closes; all wait for the window, then go as one.
    await report(pool, b.id, 1, "open")
    assert await run(pool, NOON + timedelta(minutes=2)) == 0
    await report(pool, a.id, 2, "full")
    await report(pool, b.id, 2, "closed")
    assert await run(pool, NOON + timedelta(minutes=10)) == 0
    assert await run(pool, NOON + timedelta(seconds=30 + 900 - 1)) == 0
    assert await run(pool, NOON + timedelta(seconds=30 + 900)) == 1
    first, second = await messages(pool, phone)
    assert "НЕМАЄ МІСЦЬ: Ліцей №5" in second["body"] and "ЗАЧИНЕНО: Гімназія №2" in second["body"]
    assert "ВІДКРИТО" not in second["body"], "b's opening was overtaken by its closing"
    # Each message's key (unique with its phone) names its window's start: the next window began a window's length
    # after the first message.
    assert first["dedup_key"] == f"alert:{int(NOON.timestamp())}"
    assert second["dedup_key"] == f"alert:{int((NOON + timedelta(seconds=30 + 900)).timestamp())}"


async def test_a_flush_in_small_batches_reaches_every_due_phone_once(pool: asyncpg.Pool) -> None:
    """The due phones are cut into key ranges of alert_flush_batch, shared by the workers; the last one is short."""
    point = await learn(pool, point_state())
    phones = [await add_phone(pool) for _ in range(7)]
    for phone in phones:
        await subscribe_point(pool, phone, point.id)
    await report(pool, point.id, 1, "open")
    settings = alert_settings(alert_gather_s=30, alert_window_s=900, alert_flush_batch=2, alert_flush_workers=3)
    await alerts.plan(pool, settings, now=NOON)
    async with pool.acquire() as conn:
        ranges = await data.due_ranges(conn, now=NOON + timedelta(seconds=30), batch=2)
    ordered = sorted(phones)
    assert ranges == [(ordered[0], ordered[1]), (ordered[2], ordered[3]), (ordered[4], ordered[5]), (ordered[6],) * 2]
    assert await alerts.flush(pool, settings, now=NOON + timedelta(seconds=30)) == 7
    assert sorted(m["phone_hash"] for m in await messages(pool)) == ordered
    assert await alerts.flush(pool, settings, now=NOON + timedelta(seconds=31)) == 0


async def test_redelivery_and_repeated_runs_queue_nothing_twice(pool: asyncpg.Pool) -> None:
    point = await learn(pool, point_state())
    phone = await add_phone(pool)
    await subscribe_point(pool, phone, point.id)
    opened = event(STATUS_CHANGED.type, status_state(point.id, 1, "open"))
    for _ in range(3):
        await events.handle_alert_event(pool, opened)
    # An older version arriving late (another event id) is no news either.
    await report(pool, point.id, 1, "closed")
    for minutes in (1, 1, 2, 30):
        await run(pool, NOON + timedelta(minutes=minutes))
    assert [m["body"][:8] for m in await messages(pool)] == ["ВІДКРИТО"]


async def test_quiet_hours_hold_back_openings_but_not_closings_or_blackout_activations(pool: asyncpg.Pool) -> None:
    reported = await learn(pool, point_state())
    activated = await learn(pool, point_state(lat=50.46, lon=30.53))
    quiet_phone, urgent_phone, closing_phone = [await add_phone(pool) for _ in range(3)]
    await subscribe_point(pool, quiet_phone, reported.id)
    await subscribe_area(pool, urgent_phone, activated.lat, activated.lon, 1500)
    await subscribe_point(pool, closing_phone, activated.id)
    await report(pool, reported.id, 1, "open")  # an operator's report at night: may wait
    await report(pool, activated.id, 1, "closed")
    await report(pool, activated.id, 2, "open", cause="activation")  # a blackout started: now
    await alerts.plan(pool, SETTINGS, now=NIGHT)
    assert await alerts.flush(pool, SETTINGS, now=NIGHT + timedelta(minutes=1)) == 2
    assert {m["phone_hash"] for m in await messages(pool)} == {urgent_phone, closing_phone}
    morning = datetime(2026, 11, 27, 5, 0, tzinfo=UTC)  # 07:00 in Kyiv
    assert await alerts.flush(pool, SETTINGS, now=morning - timedelta(minutes=1)) == 0
    assert await alerts.flush(pool, SETTINGS, now=morning) == 1
    assert (await messages(pool, quiet_phone))[0]["body"].startswith("ВІДКРИТО")


async def test_an_area_phone_near_a_reported_and_an_activated_opening_hears_at_once(pool: asyncpg.Pool) -> None:
    """Each subscription is found once per batch (by the first point that holds it): urgent points are looked at
    first, so the report queued before the activation does not make the phone wait for the morning."""
    reported = await learn(pool, point_state())
    activated = await learn(pool, point_state(**LIBRARY))
    phone = await add_phone(pool)
    await subscribe_area(pool, phone, reported.lat, reported.lon, 3000)
    await report(pool, reported.id, 1, "open")  # at night: may wait
    await report(pool, activated.id, 1, "open", cause="activation")  # a blackout started: now
    await alerts.plan(pool, SETTINGS, now=NIGHT)
    assert await alerts.flush(pool, SETTINGS, now=NIGHT + timedelta(seconds=30)) == 1
    [message] = await messages(pool, phone)
    assert message["body"] == "Відкрито поруч: Ліцей №5, вул. Хрещатик, 1 (тепло); ще 1 поруч", message["body"]


async def test_urgent_news_brings_a_held_back_window_forward(pool: asyncpg.Pool) -> None:
    point = await learn(pool, point_state())
    phone = await add_phone(pool)
    await subscribe_point(pool, phone, point.id)
    await report(pool, point.id, 1, "open")
    await alerts.plan(pool, SETTINGS, now=NIGHT)
    assert await alerts.flush(pool, SETTINGS, now=NIGHT + timedelta(hours=1)) == 0
    await report(pool, point.id, 2, "full")
    await alerts.plan(pool, SETTINGS, now=NIGHT + timedelta(hours=1))
    assert await alerts.flush(pool, SETTINGS, now=NIGHT + timedelta(hours=1, seconds=30)) == 1
    assert (await messages(pool, phone))[0]["body"].startswith("НЕМАЄ МІСЦЬ")


async def test_area_news_joins_a_window_that_held_only_a_followed_points_news(pool: asyncpg.Pool) -> None:
    followed = await learn(pool, point_state(lat=49.8397, lon=24.0297, name_uk="Гімназія №2, Львів"))
    nearby = await learn(pool, point_state())
    phone = await add_phone(pool)
    await subscribe_point(pool, phone, followed.id)
    await subscribe_area(pool, phone, nearby.lat, nearby.lon, 1000)
    await report(pool, followed.id, 1, "closed")
    await alerts.plan(pool, SETTINGS, now=NOON)
    await report(pool, nearby.id, 1, "open", cause="activation")
    await alerts.plan(pool, SETTINGS, now=NOON + timedelta(seconds=10))
    assert await alerts.flush(pool, SETTINGS, now=NOON + timedelta(seconds=30)) == 1
    [message] = await messages(pool, phone)
    assert message["body"].startswith("ЗАЧИНЕНО: Гімназія №2") and "Відкрито поруч: Ліцей №5" in message["body"]


async def test_a_window_planned_here_takes_later_openings_without_another_write(pool: asyncpg.Pool) -> None:
    first = await learn(pool, point_state())
    second = await learn(pool, point_state(lat=50.4490, lon=30.5230, name_uk="Гімназія №2, Київ"))
    third = await learn(pool, point_state(lat=50.4500, lon=30.5240, name_uk="Бібліотека №1, Київ"))
    phone = await add_phone(pool)
    await subscribe_area(pool, phone, first.lat, first.lon, 2000)
    areas = AreaIndex()  # the replica's index, kept between calls as the service keeps it
    await report(pool, first.id, 1, "open", cause="activation")
    await alerts.plan(pool, SETTINGS, now=NOON, areas=areas)
    assert areas.waiting(NOON + timedelta(seconds=10)).sum() == 1, "the urgent window waits until NOON + 30 s"
    await report(pool, second.id, 1, "open", cause="activation")
    # The planner leaves the phone out of what it sends to the database; a replica without that memory does not.
    async with pool.acquire() as conn, conn.transaction():
        batch = await data.lock_alert_batch(conn, batch=10)
        assert alerts.area_news(areas, batch, now=NOON + timedelta(seconds=10))[:2] == ([], [])
        elsewhere = AreaIndex()
        await elsewhere.refresh(conn)
        assert alerts.area_news(elsewhere, batch, now=NOON + timedelta(seconds=10))[:2] == ([phone], [True])
    await alerts.plan(pool, SETTINGS, now=NOON + timedelta(seconds=10), areas=areas)
    # Flushed when due, the one message names both openings (the second was left to the waiting window).
    assert await alerts.flush(pool, SETTINGS, now=NOON + timedelta(seconds=30), areas=areas) == 1
    [message] = await messages(pool, phone)
    assert message["body"] == "Відкрито поруч: Ліцей №5, вул. Хрещатик, 1 (тепло); ще 1 поруч", message
    # Close to the window's flush time the memory is not trusted: news then goes to the database, which starts the
    # next window a window's length after the message.
    assert not areas.waiting(NOON + timedelta(seconds=26)).any()
    await report(pool, third.id, 1, "open", cause="activation")
    await alerts.plan(pool, SETTINGS, now=NOON + timedelta(seconds=40), areas=areas)
    assert await alerts.flush(pool, SETTINGS, now=NOON + timedelta(seconds=40 + 600), areas=areas) == 0
    assert await alerts.flush(pool, SETTINGS, now=NOON + timedelta(seconds=30 + 900), areas=areas) == 1
    assert len(await messages(pool, phone)) == 2


async def test_an_area_message_is_not_sent_again_word_for_word(pool: asyncpg.Pool) -> None:
    # Three points open round a home; a fourth, farther one opens after the first message. The next window's
    # message would name the same nearest points with the same count (which stops at alert_area_points + 1).
    home = (50.4470, 30.5220)
    opened = [
        await learn(pool, point_state(lat=50.4480, lon=30.5225)),  # 111 m
        await learn(pool, point_state(lat=50.4430, lon=30.5180, name_uk="Гімназія №2, Київ")),  # 530 m
        await learn(pool, point_state(**LIBRARY)),  # 1.2 km
    ]
    farther = await learn(pool, point_state(lat=50.4570, lon=30.5100, name_uk="Школа №9, Київ"))  # 1.4 km
    nearer = await learn(
        pool, point_state(lat=50.4472, lon=30.5221, name_uk="Бібліотека №7, Київ", address_uk="вул. Прорізна, 2, Київ")
    )
    phone = await add_phone(pool)
    await subscribe_area(pool, phone, *home, 2000)
    areas = AreaIndex()  # the replica's index, kept between calls as the service keeps it
    for point in opened:
        await report(pool, point.id, 1, "open", cause="activation")
    assert await run(pool, NOON, areas=areas) == 0
    assert await run(pool, NOON + timedelta(seconds=30), areas=areas) == 1
    await report(pool, farther.id, 1, "open", cause="activation")
    assert await run(pool, NOON + timedelta(seconds=60), areas=areas) == 0
    assert await run(pool, NOON + timedelta(seconds=30 + 900), areas=areas) == 0, "the same words again"
    [first] = await messages(pool, phone)
    assert first["body"].startswith("Відкрито поруч: Ліцей №5") and first["body"].endswith("ще 2 поруч"), first
    # The window was forgotten unsent, so a nearer point opening later is told at once (the last message went
    # more than a window's length before).
    await report(pool, nearer.id, 1, "open", cause="activation")
    later = NOON + timedelta(seconds=1000)
    assert await run(pool, later, areas=areas) == 0
    assert await run(pool, later + timedelta(seconds=30), areas=areas) == 1
    second = (await messages(pool, phone))[-1]
    assert second["body"].startswith("Відкрито поруч: Бібліотека №7, вул. Прорізна, 2"), second["body"]


async def test_a_held_back_area_window_is_not_trusted_to_wait(pool: asyncpg.Pool) -> None:
    # Urgent news may bring a window held back by quiet hours forward through another replica: only urgent windows,
    # whose flush time nothing moves, are remembered as waiting.
    first, activated, later = [
        await learn(pool, point_state(lat=50.4480 + i / 1000, lon=30.5225, name_uk=f"Ліцей №{i + 5}, Київ"))
        for i in range(3)
    ]
    phone = await add_phone(pool)
    await subscribe_area(pool, phone, first.lat, first.lon, 2000)
    replica_a, replica_b = AreaIndex(), AreaIndex()
    await report(pool, first.id, 1, "open")  # an ordinary opening at night: held back until 07:00
    await alerts.plan(pool, SETTINGS, now=NIGHT, areas=replica_a)
    assert not replica_a.waiting(NIGHT + timedelta(seconds=10)).any()
    await report(pool, activated.id, 1, "open", cause="activation")  # urgent, planned by the other replica
    await alerts.plan(pool, SETTINGS, now=NIGHT + timedelta(seconds=10), areas=replica_b)
    assert await alerts.flush(pool, SETTINGS, now=NIGHT + timedelta(seconds=40), areas=replica_b) == 1
    # After that message, replica A hears of another ordinary opening: it must reach the database (a next window).
    await report(pool, later.id, 1, "open")
    await alerts.plan(pool, SETTINGS, now=NIGHT + timedelta(minutes=1), areas=replica_a)
    assert await alerts.flush(pool, SETTINGS, now=NIGHT + timedelta(hours=8), areas=replica_a) == 1
    assert len(await messages(pool, phone)) == 2


async def test_hidden_retired_and_coarse_points(pool: asyncpg.Pool) -> None:
    hidden = await learn(pool, point_state(visibility="hidden"))
    retired = await learn(pool, point_state(lat=50.451, lon=30.524))
    await events.handle_point_event(
        pool, event(POINT_RETIRED.type, retired.model_copy(update={"version": 2, "retired": True}))
    )
    coarse = await learn(pool, point_state(lat=50.4512, lon=30.5236, visibility="coarse", name_uk="Укриття, Київ"))
    phone = await add_phone(pool)
    await subscribe_area(pool, phone, 50.4501, 30.5234, 3000)
    for point in (hidden, retired, coarse):
        await subscribe_point(pool, phone, point.id)
        await report(pool, point.id, 1, "open", cause="activation")
    assert await run(pool, NOON + timedelta(minutes=1), alert_settings(alert_gather_s=0)) == 1
    [message] = await messages(pool)
    # Only the coarse point, and only by its settlement: neither its street nor the other two appear.
    assert message["body"] == "ВІДКРИТО: Укриття, Київ", message["body"]


async def test_status_before_the_point_is_known_alerts_once_it_is(pool: asyncpg.Pool) -> None:
    point = point_state()
    phone = await add_phone(pool)
    await subscribe_point(pool, phone, point.id)
    await report(pool, point.id, 1, "open")
    assert await run(pool, NOON + timedelta(minutes=1)) == 0
    await learn(pool, point)
    # The registry's update changes the address; the next change is told with it.
    await events.handle_point_event(
        pool, event(POINT_UPDATED.type, point.model_copy(update={"version": 2, "address_uk": "вул. Нова, 9, Київ"}))
    )
    await report(pool, point.id, 2, "closed")
    await alerts.plan(pool, SETTINGS, now=NOON + timedelta(minutes=5))
    assert await alerts.flush(pool, SETTINGS, now=NOON + timedelta(minutes=6)) == 1
    assert (await messages(pool))[0]["body"] == "ЗАЧИНЕНО: Ліцей №5, вул. Нова, 9, Київ"


async def test_a_change_before_the_subscription_is_no_news_to_it(pool: asyncpg.Pool) -> None:
    point = await learn(pool, point_state())
    await report(pool, point.id, 1, "open")
    late = await add_phone(pool)
    await subscribe_point(pool, late, point.id)
    nearby = await add_phone(pool)
    await subscribe_area(pool, nearby, point.lat, point.lon, 2_000)
    await alerts.plan(pool, SETTINGS, now=NOON + timedelta(hours=1))
    assert await alerts.flush(pool, SETTINGS, now=NOON + timedelta(hours=1, minutes=1)) == 0, "both came after it"
    await report(pool, point.id, 2, "closed")
    await alerts.plan(pool, SETTINGS, now=NOON + timedelta(hours=2))
    assert await alerts.flush(pool, SETTINGS, now=NOON + timedelta(hours=2, minutes=1)) == 1
    assert [m["body"].split(":")[0] for m in await messages(pool)] == ["ЗАЧИНЕНО"]


async def test_unconfirmed_stopped_and_latin_numbers(pool: asyncpg.Pool) -> None:
    point = await learn(pool, point_state())
    unconfirmed = await add_phone(pool, confirmed=False)
    stopped = await add_phone(pool, stopped=True)
    latin = await add_phone(pool, latin=True)
    for phone in (unconfirmed, stopped, latin):
        await subscribe_point(pool, phone, point.id)
    await report(pool, point.id, 1, "open")
    assert await run(pool, NOON + timedelta(minutes=1), alert_settings(alert_gather_s=0)) == 1
    [message] = await messages(pool)
    assert message["phone_hash"] == latin and message["body"] == "VIDKRYTO: Litsei No5, vul. Khreshchatyk, 1, Kyiv"
    # The windows that sent nothing are gone: a number that confirms later is not held back by them.
    assert await pool.fetchval("SELECT count(*) FROM alert_windows WHERE phone_hash <> $1", latin) == 0


async def test_ops_alerts_reach_the_regions_contacts_once_per_window(pool: asyncpg.Pool) -> None:
    kyiv_a = await learn(pool, point_state(code="KYIV-A"))
    kyiv_b = await learn(pool, point_state(code="KYIV-B", visibility="hidden"))
    lviv = await learn(pool, point_state(code="LVIV-A", katotth=LVIV_CODE, lat=49.84, lon=24.03))
    kyiv_contact, lviv_contact, national = [await add_phone(pool) for _ in range(3)]
    for phone, prefix in ((kyiv_contact, "UA80"), (lviv_contact, "UA46"), (national, "UA")):
        await pool.execute("UPDATE phones SET is_contact = true, confirmed_at = NULL WHERE phone_hash = $1", phone)
        await pool.execute(
            "INSERT INTO alert_contacts (id, phone_hash, katotth_prefix) VALUES ($1, $2, $3)",
            uuid.uuid4(),
            phone,
            prefix,
        )
    stale = status_state(kyiv_a.id, 2, "unknown", cause="stale")
    await events.handle_alert_event(pool, event(STATUS_STALE.type, stale))
    low = status_state(kyiv_b.id, 3, "open", fuel_hours=2.5, low_fuel=True)
    await events.handle_alert_event(pool, event(STATUS_CHANGED.type, low))
    await events.handle_alert_event(pool, event(STATUS_LOW_FUEL.type, low))
    assert await run(pool, NIGHT) == 0
    assert await run(pool, NIGHT + timedelta(seconds=30)) == 2  # ops alerts are urgent: quiet hours do not apply
    [kyiv_message] = await messages(pool, kyiv_contact)
    assert kyiv_message["kind"] == "ops"
    assert "KYIV-A" in kyiv_message["body"] and "немає звітів" in kyiv_message["body"]
    assert "KYIV-B" in kyiv_message["body"] and "мало пального (2.5 год)" in kyiv_message["body"]
    assert len(await messages(pool, national)) == 1 and await messages(pool, lviv_contact) == []
    # More trouble within the window waits for the window's end.
    await events.handle_alert_event(pool, event(STATUS_STALE.type, status_state(lviv.id, 1, "unknown", cause="stale")))
    await alerts.plan(pool, SETTINGS, now=NIGHT + timedelta(minutes=5))
    # Lviv's contact had nothing yet: its message goes after the gathering delay; the national one's waits.
    assert await alerts.flush(pool, SETTINGS, now=NIGHT + timedelta(minutes=6)) == 1
    assert await alerts.flush(pool, SETTINGS, now=NIGHT + timedelta(seconds=30 + 899)) == 0
    assert await alerts.flush(pool, SETTINGS, now=NIGHT + timedelta(seconds=30 + 900)) == 1
    assert "LVIV-A" in (await messages(pool, national))[-1]["body"]


async def test_phone_keys_compare_byte_by_byte(pool: asyncpg.Pool) -> None:
    """Every column holding a phone key compares bytes ("C"): the tables join on it, so none may differ."""
    columns = await pool.fetch(
        """SELECT table_name, column_name, collation_name FROM information_schema.columns
           WHERE table_schema = current_schema() AND column_name IN ('phone_hash', 'dedup_key')"""
    )
    assert {c["table_name"] for c in columns} >= {"phones", "subscriptions", "sms_messages", "alert_windows"}
    assert {(c["table_name"], c["column_name"]): c["collation_name"] for c in columns} == {
        (c["table_name"], c["column_name"]): "C" for c in columns
    }
