"""Webhook endpoints (register, list, switch, remove) and turning status events into deliveries."""

import json
import secrets
import uuid
from collections.abc import Sequence
from typing import Any

import asyncpg

from poi_notify import data
from poi_notify.settings import NotifySettings
from poi_notify.webhooks import delivery
from poi_notify.webhooks.models import NewWebhook, RegisteredWebhook, Webhook
from poi_shared import db
from poi_shared.contracts import PointState, StatusState
from poi_shared.envelope import Event
from poi_shared.visibility import public_place

SECRET_PREFIX = "whsec_"  # noqa: S105 -- a marker that names what the value is, not a secret


class TooManyWebhooks(Exception):
    """The integrator has as many endpoints as allowed."""


class AreaTooLarge(ValueError):
    """The filter's disk is wider than the service allows."""


async def register(pool: asyncpg.Pool, settings: NotifySettings, *, owner: str, new: NewWebhook) -> RegisteredWebhook:
    """Check the URL is safe to call and the filter within bounds, then store the endpoint with a fresh secret."""
    await delivery.check_target(new.url, allow_loopback_http=settings.webhook_allow_loopback_http)
    if new.area is not None and new.area.radius_m > settings.webhook_max_radius_m:
        raise AreaTooLarge(f"radius_m must be at most {settings.webhook_max_radius_m}")
    secret = SECRET_PREFIX + secrets.token_urlsafe(32)
    async with db.connection(pool) as conn, conn.transaction():
        # Serialise one owner's registrations so two at once cannot both pass the cap.
        await conn.execute("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", f"webhooks:{owner}")
        if await data.count_webhooks(conn, owner) >= settings.webhook_max_per_owner:
            raise TooManyWebhooks(f"at most {settings.webhook_max_per_owner} webhooks per integrator")
        row = await data.insert_webhook(
            conn,
            id=uuid.uuid4(),
            owner=owner,
            url=new.url,
            description=new.description,
            secret=secret,
            event_types=[t.value for t in new.event_types],
            katotth_prefixes=sorted(set(new.katotth)),
            lat=new.area.lat if new.area else None,
            lon=new.area.lon if new.area else None,
            radius_m=new.area.radius_m if new.area else None,
        )
    return RegisteredWebhook(**webhook(row).model_dump(), secret=secret)


def webhook(row: asyncpg.Record) -> Webhook:
    """A stored endpoint as integrators see it."""
    area = None if row["radius_m"] is None else {"lat": row["lat"], "lon": row["lon"], "radius_m": row["radius_m"]}
    return Webhook(
        id=row["id"],
        url=row["url"],
        description=row["description"],
        event_types=list(row["event_types"]),
        katotth=list(row["katotth_prefixes"]),
        area=area,
        enabled=row["enabled"],
        disabled_reason=row["disabled_reason"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


async def learn_point(conn: asyncpg.Connection, point: PointState) -> None:
    """Remember a point's area and visibility for filters, and match the status events that came before it."""
    await data.lock_webhook_point(conn, point.id)
    place = public_place(point)
    lat, lon = (place.lat, place.lon) if place is not None else (point.lat, point.lon)
    await data.upsert_webhook_point(
        conn,
        point_id=point.id,
        version=point.version,
        katotth=point.katotth,
        lat=lat,
        lon=lon,
        visibility=point.visibility.value,
        retired=point.retired,
    )
    for waiting in await data.take_waiting_events(conn, point.id):
        await data.queue_deliveries(
            conn,
            point_id=point.id,
            event_id=waiting["event_id"],
            event_type=waiting["event_type"],
            body=waiting["body"],
        )


async def plan_many_deliveries(conn: asyncpg.Connection, events: Sequence[Event]) -> int:
    """plan_deliveries for many events, in order, in the caller's transaction, with a few statements for all.

    The points' locks are taken in one statement, in point order (so batches never deadlock); events of a type no
    webhook takes need nothing more, as plan_deliveries would have found.
    """
    statuses = [(e, e.data) for e in events if isinstance(e.data, StatusState)]
    if not statuses:
        return 0
    await data.lock_webhook_points(conn, sorted({status.point_id for _, status in statuses}))
    taken = await data.webhook_event_types(conn)
    wanted = [(e, status) for e, status in statuses if e.type in taken]
    if not wanted:
        return 0
    bodies = [cloud_event(e) for e, _ in wanted]
    outcomes = await data.queue_many_deliveries(
        conn, [(status.point_id, e.id, e.type, body) for (e, status), body in zip(wanted, bodies, strict=True)]
    )
    for (event, status), body, (known, _) in zip(wanted, bodies, outcomes, strict=True):
        if not known:  # kept until the point's registration is handled, as plan_deliveries does
            await data.wait_for_point(
                conn, point_id=status.point_id, event_id=event.id, event_type=event.type, body=body
            )
    return sum(queued for _, queued in outcomes)


def cloud_event(event: Event) -> str:
    """The event as a CloudEvents 1.0 structured-mode JSON document: what is POSTed and signed."""
    document: dict[str, Any] = {
        "specversion": "1.0",
        "id": event.id,
        "source": event.source,
        "type": event.type,
        "subject": event.subject,
        "time": event.time.isoformat(),
        "datacontenttype": "application/json",
        "data": event.data.model_dump(mode="json"),
    }
    return json.dumps(document, ensure_ascii=False, separators=(",", ":"))


async def plan_deliveries(conn: asyncpg.Connection, event: Event) -> int:
    """Queue the event for every enabled webhook whose filter takes it, in the caller's transaction; how many."""
    status = event.data
    if not isinstance(status, StatusState):
        return 0  # area activations are followed through the per-point events they cause
    await data.lock_webhook_point(conn, status.point_id)
    # Hidden points match nothing: they never reach anyone outside the services.
    known, queued = await data.queue_deliveries(
        conn, point_id=status.point_id, event_id=event.id, event_type=event.type, body=cloud_event(event)
    )
    if not known and await data.any_webhook_for(conn, event.type):
        # The registry's event about the point has not been handled yet (the two streams are consumed apart):
        # kept, and matched when it is (learn_point), never delivered unchecked.
        await data.wait_for_point(
            conn, point_id=status.point_id, event_id=event.id, event_type=event.type, body=cloud_event(event)
        )
    return queued
