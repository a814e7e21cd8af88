"""Point events: rows become the contract's PointState, sent through the outbox."""

import asyncpg

from poi_shared.contracts import EventType, PointState
from poi_shared.envelope import build_message
from poi_shared.outbox import enqueue

SOURCE = "/poi/registry"


def point_state(row: asyncpg.Record) -> PointState:
    """The full state of a point as every event and response carries it."""
    return PointState(
        id=row["id"],
        version=row["version"],
        name_uk=row["name_uk"],
        name_en=row["name_en"],
        category=row["category"],
        lat=row["lat"],
        lon=row["lon"],
        katotth=row["katotth"],
        address=row["address"],
        capacity=row["capacity"],
        facilities=row["facilities"],
        visibility=row["visibility"],
        retired=row["retired_at"] is not None,
        updated_at=row["updated_at"],
    )


async def emit(conn: asyncpg.Connection, *, namespace: str, event_type: EventType, state: PointState) -> None:
    """Write the event into the outbox, in the caller's transaction."""
    message = build_message(namespace=namespace, event_type=event_type, key=str(state.id), data=state, source=SOURCE)
    await enqueue(conn, message)
