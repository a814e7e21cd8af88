"""Status events out (through the outbox) and point events in (from the registry)."""

import asyncpg

from poi_shared import db
from poi_shared.contracts import STATUS_CHANGED, PointState, StatusState
from poi_shared.envelope import Event, build_message
from poi_shared.outbox import enqueue
from poi_status import data

SOURCE = "/poi/status"
POINTS_CONSUMER = "status-points"


def status_state(row: asyncpg.Record) -> StatusState:
    """The full current status, as events and responses carry it."""
    return StatusState(
        point_id=row["point_id"],
        version=row["version"],
        state=row["state"],
        note=row["note"],
        reported_at=row["reported_at"],
        reported_by=row["reported_by"],
    )


async def emit_status_changed(conn: asyncpg.Connection, *, namespace: str, state: StatusState) -> None:
    """Write the status event into the outbox, in the caller's transaction."""
    message = build_message(
        namespace=namespace, event_type=STATUS_CHANGED, key=str(state.point_id), data=state, source=SOURCE
    )
    await enqueue(conn, message)


async def handle_point_event(pool: asyncpg.Pool, event: Event) -> None:
    """Keep known_points in step with the registry; the version check makes repeats harmless."""
    point = event.data
    assert isinstance(point, PointState)
    async with db.connection(pool) as conn:
        await data.upsert_known_point(
            conn, point_id=point.id, version=point.version, katotth=point.katotth, retired=point.retired
        )
