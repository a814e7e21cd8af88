"""Status events in: each is recorded exactly once, however often it is delivered."""

import asyncpg

from poi_notify import data
from poi_shared import db, inbox
from poi_shared.contracts import StatusState
from poi_shared.envelope import Event

STATUS_CONSUMER = "notify-status"


async def handle_status_event(pool: asyncpg.Pool, event: Event) -> None:
    """Record the event and mark it handled in one transaction; a repeat changes nothing."""
    status = event.data
    assert isinstance(status, StatusState)
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
