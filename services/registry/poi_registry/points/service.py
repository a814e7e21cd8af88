"""Registering and reading points: each change and its event in one transaction."""

import uuid

import asyncpg

from poi_registry import data, events
from poi_registry.points.models import PointCreate
from poi_shared import db
from poi_shared.contracts import POINT_REGISTERED, PointState


async def register_point(pool: asyncpg.Pool, *, payload: PointCreate, namespace: str) -> PointState:
    """Store the point and its registered event together."""
    async with db.connection(pool) as conn, conn.transaction():
        row = await data.insert_point(
            conn,
            point_id=uuid.uuid4(),
            name_uk=payload.name_uk,
            name_en=payload.name_en,
            category=payload.category.value,
            host_type=payload.host_type.value,
            lat=payload.lat,
            lon=payload.lon,
            address_uk=payload.address_uk,
            address_en=payload.address_en,
            settlement=payload.settlement,
            katotth=payload.katotth,
            capacity=payload.capacity,
            services=[s.value for s in payload.services],
            schedule=payload.schedule.model_dump(mode="json"),
            operator_org=payload.operator_org,
            public_phone=payload.public_phone,
            contact_phone=payload.contact_phone,
            visibility=payload.visibility.value,
        )
        state = events.point_state(row)
        await events.emit(conn, namespace=namespace, event_type=POINT_REGISTERED, state=state)
    return state


async def get_point(pool: asyncpg.Pool, *, point_id: uuid.UUID) -> PointState | None:
    """The point's current state, or None."""
    async with db.connection(pool) as conn:
        row = await data.get_point(conn, point_id)
    return events.point_state(row) if row else None
