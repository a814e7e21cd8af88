"""Point events: rows become the contract's PointState, sent through the outbox."""

import json

import asyncpg

from poi_shared.contracts import EventType, PointState, Schedule
from poi_shared.envelope import build_message
from poi_shared.outbox import enqueue

SOURCE = "/poi/registry"


def point_state(row: asyncpg.Record) -> PointState:
    """The full public state of a point as every event carries it (the private contact phone stays here)."""
    return PointState(
        id=row["id"],
        code=row["code"],
        version=row["version"],
        name_uk=row["name_uk"],
        name_en=row["name_en"],
        category=row["category"],
        host_type=row["host_type"],
        lat=row["lat"],
        lon=row["lon"],
        address_uk=row["address_uk"],
        address_en=row["address_en"],
        settlement=row["settlement"],
        katotth=row["katotth"],
        capacity=row["capacity"],
        services=row["services"],
        schedule=Schedule.model_validate(json.loads(row["schedule"])),
        operator_org=row["operator_org"],
        public_phone=row["public_phone"],
        visibility=row["visibility"],
        retired=row["retired_at"] is not None,
        updated_at=row["updated_at"],
    )


async def emit(conn: asyncpg.Connection, *, namespace: str, event_type: EventType, state: PointState) -> None:
    """Write the event into the outbox, in the caller's transaction."""
    message = build_message(namespace=namespace, event_type=event_type, key=str(state.id), data=state, source=SOURCE)
    await enqueue(conn, message)
