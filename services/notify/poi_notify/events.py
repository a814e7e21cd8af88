"""Status events in: each is recorded exactly once, however often it is delivered."""

from collections.abc import Callable, Sequence

import asyncpg

from poi_notify import data
from poi_notify.alerts import service as alerts
from poi_notify.alerts.templates import LOW_FUEL, STALE
from poi_notify.webhooks import service as webhooks_service
from poi_shared import db, inbox, jetstream
from poi_shared.contracts import STATUS_LOW_FUEL, STATUS_STALE, PointState, StatusState
from poi_shared.envelope import Event

STATUS_CONSUMER = "notify-status"


async def handle_status_event(pool: asyncpg.Pool, event: Event) -> None:
    """Record the event and mark it handled in one transaction; a repeat changes nothing."""
    status = event.data
    if not isinstance(status, StatusState):
        return  # an area's activation: its points' own events follow on their subjects
    async with db.connection(pool) as conn, conn.transaction():
        if not await inbox.claim(conn, consumer=STATUS_CONSUMER, event_id=event.id):
            return
        await data.insert_observation(
            conn,
            event_id=event.id,
            point_id=status.point_id,
            version=status.version,
            state=status.state.value,
            reported_at=status.reported_at,
        )


async def handle_status_events(pool: asyncpg.Pool, batch: Sequence[Event]) -> None:
    """A fetch's events at once: recorded and marked handled in one transaction; repeats change nothing."""
    statuses = [e for e in batch if isinstance(e.data, StatusState)]
    if not statuses:
        return
    async with db.connection(pool) as conn, conn.transaction():
        claimed = await inbox.claim_many(conn, consumer=STATUS_CONSUMER, event_ids=[e.id for e in statuses])
        observations = []
        for event in statuses:
            if event.id in claimed:
                claimed.discard(event.id)  # the same event twice in a fetch is recorded once
                status = event.data
                assert isinstance(status, StatusState)
                observations.append((event.id, status.point_id, status.version, status.state.value, status.reported_at))
        if observations:
            await data.insert_observations(conn, observations)


# --- Alerts: registry point events and status events for alerts ---

POINTS_CONSUMER = "notify-points"
STATUS_ALERTS_CONSUMER = "notify-alerts"
# Status events that carry ops news for the point's coordinator contacts, and what it is called.
_OPS_NEWS = {STATUS_STALE.type: STALE, STATUS_LOW_FUEL.type: LOW_FUEL}


async def handle_point_event(pool: asyncpg.Pool, event: Event) -> None:
    """Keep alert_points in step with the registry; the version check makes repeats harmless."""
    point = event.data
    assert isinstance(point, PointState)
    async with db.connection(pool) as conn:
        await alerts.observe_point(conn, point)


async def handle_alert_event(pool: asyncpg.Pool, event: Event) -> None:
    """Make the status current and queue its news, exactly once (inbox); area events need nothing here.

    An area's activation also changes each of its points, and those per-point events carry the news.
    """
    status = event.data
    if not isinstance(status, StatusState):
        return
    async with db.connection(pool) as conn, conn.transaction():
        if not await inbox.claim(conn, consumer=STATUS_ALERTS_CONSUMER, event_id=event.id):
            return
        await alerts.observe_status(conn, status, ops=_OPS_NEWS.get(event.type))


async def handle_alert_events(pool: asyncpg.Pool, batch: Sequence[Event]) -> None:
    """A fetch's events at once, in order, in one transaction with their inbox rows (see handle_alert_event)."""
    statuses = [e for e in batch if isinstance(e.data, StatusState)]
    if not statuses:
        return
    async with db.connection(pool) as conn, conn.transaction():
        claimed = await inbox.claim_many(conn, consumer=STATUS_ALERTS_CONSUMER, event_ids=[e.id for e in statuses])
        for event in statuses:
            if event.id in claimed:
                claimed.discard(event.id)
                assert isinstance(event.data, StatusState)
                with jetstream.consuming(event):  # the news queued carries this event's trace
                    await alerts.observe_status(conn, event.data, ops=_OPS_NEWS.get(event.type))


# --- Webhooks: points learnt from registry events, status events turned into deliveries ---

POINTS_WEBHOOKS_CONSUMER = "notify-webhooks-points"
STATUS_WEBHOOKS_CONSUMER = "notify-webhooks"


async def handle_point_event_for_webhooks(pool: asyncpg.Pool, event: Event) -> None:
    """Remember the point's area and visibility; a repeat or an older version changes nothing."""
    point = event.data
    assert isinstance(point, PointState)
    async with db.connection(pool) as conn, conn.transaction():
        if not await inbox.claim(conn, consumer=POINTS_WEBHOOKS_CONSUMER, event_id=event.id):
            return
        await webhooks_service.learn_point(conn, point)


async def handle_status_event_for_webhooks(
    pool: asyncpg.Pool, event: Event, *, queued: Callable[[], None] = lambda: None
) -> None:
    """Queue a delivery for each matching webhook in the same transaction as the inbox claim; then wake the sender."""
    async with db.connection(pool) as conn, conn.transaction():
        if not await inbox.claim(conn, consumer=STATUS_WEBHOOKS_CONSUMER, event_id=event.id):
            return
        planned = await webhooks_service.plan_deliveries(conn, event)
    if planned:
        queued()


async def handle_status_events_for_webhooks(
    pool: asyncpg.Pool, batch: Sequence[Event], *, queued: Callable[[], None] = lambda: None
) -> None:
    """A fetch's events at once, in order, in one transaction with their inbox rows; then wake the sender."""
    async with db.connection(pool) as conn, conn.transaction():
        claimed = await inbox.claim_many(conn, consumer=STATUS_WEBHOOKS_CONSUMER, event_ids=[e.id for e in batch])
        fresh = []
        for event in batch:
            if event.id in claimed:
                claimed.discard(event.id)  # the same event twice in a fetch is planned once
                fresh.append(event)
        planned = await webhooks_service.plan_many_deliveries(conn, fresh)
    if planned:
        queued()
