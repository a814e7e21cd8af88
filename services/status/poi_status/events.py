"""Status events out (through the outbox) and point events in (from the registry)."""

import json
from collections.abc import Mapping
from typing import Any

import asyncpg

from poi_shared import db
from poi_shared.contracts import (
    AREA_ACTIVATED,
    AREA_DEACTIVATED,
    STATUS_CHANGED,
    STATUS_LOW_FUEL,
    STATUS_STALE,
    AreaAction,
    AreaActivation,
    EventType,
    PointState,
    StatusState,
    area_key,
)
from poi_shared.envelope import Event, OutgoingMessage, build_message
from poi_status import data

SOURCE = "/poi/status"
POINTS_CONSUMER = "status-points"


def status_state(row: Mapping[str, Any]) -> StatusState:
    """The full current status of a row (version 1 or later), as events, the cache and responses carry it."""
    services = row["services"]
    return StatusState(
        point_id=row["point_id"],
        version=row["version"],
        state=row["state"],
        previous_state=row["previous_state"],
        cause=row["cause"],
        services=json.loads(services) if isinstance(services, str) else services,
        power=row["power"],
        fuel_hours=row["fuel_hours"],
        low_fuel=row["low_fuel"],
        internet=row["internet"],
        occupancy=row["occupancy"],
        capacity=row["capacity"],
        note=row["note"],
        reported_at=row["reported_at"],
        changed_at=row["changed_at"],
        reported_by=row["reported_by"] or "",
    )


def status_message(namespace: str, event_type: EventType, state: StatusState) -> OutgoingMessage:
    """A status event on the point's own subject."""
    return build_message(namespace=namespace, event_type=event_type, key=str(state.point_id), data=state, source=SOURCE)


def changed_message(namespace: str, state: StatusState) -> OutgoingMessage:
    """The point's status changed (a report, or its area switched)."""
    return status_message(namespace, STATUS_CHANGED, state)


def report_messages(namespace: str, state: StatusState, *, low_fuel_began: bool) -> list[OutgoingMessage]:
    """What a published report emits: changed, then low_fuel if the fuel has just dropped under the threshold."""
    messages = [changed_message(namespace, state)]
    if low_fuel_began:
        messages.append(status_message(namespace, STATUS_LOW_FUEL, state))
    return messages


def stale_message(namespace: str, state: StatusState) -> OutgoingMessage:
    """A point stopped reporting and was downgraded to unknown."""
    return status_message(namespace, STATUS_STALE, state)


def area_message(namespace: str, activation: AreaActivation) -> OutgoingMessage:
    """A coordinator switched an area's on-blackout points on or off, on the area's subject."""
    event_type = AREA_ACTIVATED if activation.action == AreaAction.activate else AREA_DEACTIVATED
    return build_message(
        namespace=namespace,
        event_type=event_type,
        key=area_key(activation.katotth_prefix),
        data=activation,
        source=SOURCE,
    )


async def handle_point_event(pool: asyncpg.Pool, event: Event) -> None:
    """Keep known_points in step with the registry; the version check makes repeats harmless."""
    point = event.data
    assert isinstance(point, PointState)
    async with db.connection(pool) as conn:
        await data.upsert_known_point(
            conn,
            point_id=point.id,
            version=point.version,
            code=point.code,
            name_uk=point.name_uk,
            settlement=point.settlement,
            katotth=point.katotth,
            category=point.category.value,
            capacity=point.capacity,
            services=[s.value for s in point.services],
            schedule_kind=point.schedule.kind.value,
            visibility=point.visibility.value,
            retired=point.retired,
        )
