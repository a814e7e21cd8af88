"""Point events: a stored point becomes the contract's PointState, sent through the outbox."""

from collections.abc import Sequence

import asyncpg

from poi_registry.points.models import StoredPoint
from poi_shared.contracts import EventType, PointState
from poi_shared.envelope import OutgoingMessage, build_message
from poi_shared.outbox import enqueue, enqueue_many

SOURCE = "/poi/registry"


def point_state(point: StoredPoint) -> PointState:
    """The full public state of a point as every event carries it: effective visibility, no private contact."""
    return PointState(
        id=point.id,
        code=point.code,
        version=point.version,
        name_uk=point.name_uk,
        name_en=point.name_en,
        category=point.category,
        host_type=point.host_type,
        lat=point.lat,
        lon=point.lon,
        address_uk=point.address_uk,
        address_en=point.address_en,
        settlement=point.settlement,
        katotth=point.katotth,
        capacity=point.capacity,
        services=point.services,
        schedule=point.schedule,
        operator_org=point.operator_org,
        public_phone=point.public_phone,
        visibility=point.effective_visibility,
        retired=point.retired_at is not None,
        updated_at=point.updated_at,
    )


def message(*, namespace: str, event_type: EventType, point: StoredPoint) -> OutgoingMessage:
    """The event about the point's current version, on its own subject."""
    state = point_state(point)
    return build_message(namespace=namespace, event_type=event_type, key=str(state.id), data=state, source=SOURCE)


async def emit(conn: asyncpg.Connection, *, namespace: str, event_type: EventType, point: StoredPoint) -> None:
    """Write the event into the outbox, in the caller's transaction."""
    await enqueue(conn, message(namespace=namespace, event_type=event_type, point=point))


async def emit_many(
    conn: asyncpg.Connection, *, namespace: str, events: Sequence[tuple[EventType, StoredPoint]]
) -> None:
    """Write many events into the outbox at once, in the caller's transaction."""
    await enqueue_many(conn, [message(namespace=namespace, event_type=t, point=p) for t, p in events])
