"""Status events in: each is recorded exactly once, however often it is delivered."""

from collections.abc import Callable

import asyncpg

from poi_notify import data
from poi_notify.alerts import service as alerts
from poi_notify.alerts.templates import LOW_FUEL, STALE
from poi_notify.webhooks import service as webhooks_service
from poi_shared import db, inbox
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
