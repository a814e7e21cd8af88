"""Alerts: learn points, turn status changes into news, plan it into per-phone windows, send one SMS per window.

Three steps, each committed in PostgreSQL so a restart or a redelivered event changes nothing:
1. observe: an event updates alert_points and, if it is news, queues it (with the inbox, exactly once);
2. plan: batches of queued changes become rows of each affected phone's current window (one statement);
3. flush: a window whose time has come becomes ONE message, queued with sms.service under a key naming the window;
   an area subscriber's message names the nearest points open at that moment.

Urgent (never held back by quiet hours): a point closing or filling up (someone may be on the way there), any
point opened by a coordinator's area activation (a blackout has started), and every ops alert. Non-urgent: a
point opening or having places again on an ordinary report; in quiet hours it waits for their end.
"""

import math
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import asyncpg
import h3
import numpy as np

from poi_notify import cells, data
from poi_notify.alerts import templates
from poi_notify.alerts.templates import CLOSED, FULL, LOW_FUEL, OPENED, PLACES_AGAIN, STALE
from poi_notify.settings import NotifySettings
from poi_notify.sms import service as sms
from poi_shared import db
from poi_shared.contracts import OpenState, PointState, StatusCause, StatusState
from poi_shared.telemetry import current_traceparent
from poi_shared.visibility import public_place

KYIV = ZoneInfo("Europe/Kyiv")
_EDGE_M = h3.average_hexagon_edge_length(cells.RESOLUTION, unit="m")


def transition(old: str | None, new: str) -> str | None:
    """What a subscriber of the point is told about a change of state, or None if it is no news to them."""
    if new == old:
        return None
    if new == OpenState.open:
        return PLACES_AGAIN if old == OpenState.full else OPENED
    if new == OpenState.closed:
        return CLOSED
    if new == OpenState.full:
        return FULL
    return None  # standby, unknown: nothing a resident can act on


def is_urgent(change: str, cause: StatusCause) -> bool:
    """Whether the news may not wait for the end of quiet hours (see the module's docstring)."""
    return change in (CLOSED, FULL, STALE, LOW_FUEL) or cause == StatusCause.activation


def quiet_until(now: datetime, start: time, end: time) -> datetime | None:
    """The end of the quiet hours (Kyiv time) now falls in, or None outside them (or with none configured)."""
    if start == end:
        return None
    local = now.astimezone(KYIV)
    clock = local.time().replace(tzinfo=None)
    quiet = (start <= clock < end) if start < end else (clock >= start or clock < end)
    if not quiet:
        return None
    day = local.date() if clock < end else local.date() + timedelta(days=1)
    return datetime.combine(day, end, tzinfo=KYIV).astimezone(UTC)


async def observe_point(conn: asyncpg.Connection, point: PointState) -> None:
    """Keep what the public may know of a point: nothing of a hidden one, only the settlement of a coarse one."""
    place = public_place(point)
    await data.upsert_alert_point(
        conn,
        point_id=point.id,
        version=point.version,
        code=point.code,
        name_uk=point.name_uk if place else None,
        name_en=point.name_en if place else None,
        address_uk=place.address_uk if place else None,
        address_en=place.address_en if place else None,
        settlement=point.settlement if place else None,
        lat=place.lat if place else None,
        lon=place.lon if place else None,
        cell=cells.cell_of(place.lat, place.lon) if place else None,
        services=[s.value for s in point.services],
        katotth=point.katotth,
        visibility=point.visibility.value,
        retired=point.retired,
    )


async def observe_status(conn: asyncpg.Connection, status: StatusState, *, ops: str | None) -> None:
    """Make a newer status current and queue what it tells: a change for subscribers, ops news for contacts."""
    previous = await data.apply_point_status(
        conn,
        point_id=status.point_id,
        status_version=status.version,
        state=status.state.value,
        changed_at=status.changed_at or status.reported_at,
    )
    if ops is not None:
        # Ops news is queued even for a version already seen through a changed event: it is its own event.
        await data.queue_alert_change(
            conn,
            point_id=status.point_id,
            status_version=status.version,
            change=ops,
            urgent=True,
            fuel_hours=status.fuel_hours,
            traceparent=current_traceparent(),
        )
    if previous is None:
        return
    change = transition(previous, status.state.value)
    if change is not None:
        await data.queue_alert_change(
            conn,
            point_id=status.point_id,
            status_version=status.version,
            change=change,
            urgent=is_urgent(change, status.cause),
            traceparent=current_traceparent(),
        )


async def plan(pool: asyncpg.Pool, settings: NotifySettings, *, now: datetime | None = None) -> int:
    """Plan every queued change into windows, a batch per transaction; how many changes were planned."""
    planned = 0
    while True:
        moment = now or datetime.now(UTC)
        async with db.connection(pool) as conn, conn.transaction():
            if not await data.alert_queue_waiting(conn):
                return planned
            counts = await data.plan_alerts(
                conn,
                batch=settings.alert_plan_batch,
                now=moment,
                gather_s=settings.alert_gather_s,
                quiet_until=quiet_until(moment, settings.alert_quiet_start, settings.alert_quiet_end),
                window_s=settings.alert_window_s,
            )
        planned += counts["changes"]
        if counts["changes"] < settings.alert_plan_batch:
            return planned


def distance_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Haversine distance in metres (as the planner's SQL computes it)."""
    a = (
        math.sin(math.radians(lat2 - lat1) / 2) ** 2
        + math.cos(math.radians(lat1)) * math.cos(math.radians(lat2)) * math.sin(math.radians(lon2 - lon1) / 2) ** 2
    )
    return 2 * 6371008.8 * math.asin(math.sqrt(a))


class OpenPoints:
    """The points open now, by H3 cell, to find the nearest ones to many area subscriptions at once."""

    def __init__(self, rows: list[asyncpg.Record]) -> None:
        self.rows = rows
        self.by_cell: dict[int, list[int]] = defaultdict(list)
        for i, row in enumerate(rows):
            self.by_cell[row["cell"]].append(i)
        # A point without a public position has no cell, so is never a candidate: NaN only keeps the arrays aligned.
        self._lat = np.radians(np.array([np.nan if r["lat"] is None else r["lat"] for r in rows], dtype=np.float64))
        self._lon = np.radians(np.array([np.nan if r["lon"] is None else r["lon"] for r in rows], dtype=np.float64))
        # Each point's services as bits, so "offers every service wanted" is one vectorised test.
        self._bit = {s: 1 << i for i, s in enumerate(sorted({s for r in rows for s in r["services"]}))}
        self._services = np.array([self._bits(r["services"]) or 0 for r in rows], dtype=np.int64)
        self._disks: dict[tuple[str, int], np.ndarray] = {}

    def _bits(self, services: list[str]) -> int | None:
        """The services as bits, or None if one of them no open point offers."""
        bits = 0
        for service in services:
            if service not in self._bit:
                return None
            bits |= self._bit[service]
        return bits

    def _disk(self, centre: str, rings: int) -> np.ndarray:
        """The open points in the cells within rings of the centre cell (cached: neighbours share it)."""
        key = (centre, rings)
        if key not in self._disks:
            found = [i for cell in h3.grid_disk(centre, rings) for i in self.by_cell.get(h3.str_to_int(cell), ())]
            self._disks[key] = np.array(found, dtype=np.int64)
        return self._disks[key]

    def nearest_many(self, subs: list[asyncpg.Record], count: int) -> list[list[tuple[float, asyncpg.Record]]]:
        """For each subscription, up to count open points within its radius offering its services, nearest first."""
        found: list[list[tuple[float, asyncpg.Record]]] = [[] for _ in subs]
        groups: dict[tuple[str, int, int], list[int]] = defaultdict(list)
        for i, sub in enumerate(subs):
            wanted = self._bits(sub["services"])
            if wanted is None:
                continue
            centre = h3.latlng_to_cell(sub["lat"], sub["lon"], cells.RESOLUTION)
            # Every cell a point within the radius can lie in (as cells.cells_covering covers the disk).
            rings = math.ceil(sub["radius_m"] / (_EDGE_M * math.sqrt(3))) + 1
            groups[(centre, rings, wanted)].append(i)
        for (centre, rings, wanted), members in groups.items():
            candidates = self._disk(centre, rings)
            if wanted:
                candidates = candidates[(self._services[candidates] & wanted) == wanted]
            if not candidates.size:
                continue
            lat = np.radians(np.array([subs[i]["lat"] for i in members], dtype=np.float64))[:, None]
            lon = np.radians(np.array([subs[i]["lon"] for i in members], dtype=np.float64))[:, None]
            radius = np.array([subs[i]["radius_m"] for i in members], dtype=np.float64)[:, None]
            # Haversine, in metres, as distance_m and the planner's SQL compute it: a matrix of members x points.
            a = (
                np.sin((self._lat[candidates] - lat) / 2) ** 2
                + np.cos(lat) * np.cos(self._lat[candidates]) * np.sin((self._lon[candidates] - lon) / 2) ** 2
            )
            d = 2 * 6371008.8 * np.arcsin(np.sqrt(a))
            d = np.where(d <= radius, d, np.inf)
            order = np.argsort(d, axis=1, kind="stable")[:, :count]
            for row, i in enumerate(members):
                found[i] = [(float(d[row, j]), self.rows[candidates[j]]) for j in order[row] if d[row, j] != np.inf]
        return found


@dataclass(frozen=True, slots=True)
class _Window:
    phone_hash: str
    channel: str
    window_start: datetime
    area: bool
    language: str


def dedup_key(channel: str, phone_hash: str, window_start: datetime) -> str:
    """The one message of a phone's window: a second flush of the same window can never queue another."""
    return f"{channel}:{phone_hash}:{int(window_start.timestamp())}"


def _news(c: asyncpg.Record, change: str, english: bool, distance: float | None) -> templates.PointNews:
    return templates.PointNews(
        change=change,
        name=(c["name_en"] if english and c["name_en"] else c["name_uk"]) or c["code"],
        address=(c["address_en"] if english and c["address_en"] else c["address_uk"]) or "",
        settlement=c["settlement"],
        services=tuple(c["services"]),
        distance_m=distance,
    )


def compose(
    window: _Window,
    changes: list[asyncpg.Record],
    nearby: list[tuple[float, asyncpg.Record]],
    *,
    nearest: int,
    made: dict[tuple, str] | None = None,
) -> str | None:
    """The window's message (its points' changes, the nearest open points), or None if nothing is worth telling.

    made: bodies already composed from the same records, by what they tell; many phones get the same message.
    """
    english = window.language == "en"
    if window.channel == "ops":
        items = [
            templates.OpsNews(change=c["change"], code=c["code"], name=c["name_uk"], fuel_hours=c["fuel_hours"])
            for c in changes
            if not c["retired"]
        ]
        return templates.ops_body(window.language, items) if items else None
    told = [c for c in changes if not c["retired"] and c["visibility"] != "hidden"]
    seen = {c["point_id"] for c in told}
    near: list[tuple[float, asyncpg.Record]] = []
    for distance, point in sorted(nearby, key=lambda pair: pair[0]):
        if point["point_id"] not in seen:  # a followed point is told as such; two areas may hold one point
            seen.add(point["point_id"])
            near.append((distance, point))
    if not told and not near:
        return None
    near = near[: nearest + 1]
    # The text depends on the language, the points told with their changes and the nearby points in order only.
    key = (window.language, tuple((c["point_id"], c["change"]) for c in told), tuple(p["point_id"] for _, p in near))
    if made is not None and key in made:
        return made[key]
    body = templates.alert_body(
        window.language,
        [_news(c, c["change"], english, None) for c in told],
        [_news(point, templates.OPENED, english, distance) for distance, point in near],
    )
    if made is not None:
        made[key] = body
    return body


async def flush(pool: asyncpg.Pool, settings: NotifySettings, *, now: datetime | None = None) -> int:
    """Queue the one message of every due window, a batch per transaction; how many messages were queued."""
    queued = 0
    while True:
        moment = now or datetime.now(UTC)
        async with db.connection(pool) as conn, conn.transaction():
            rows = await data.due_windows(conn, now=moment, limit=settings.alert_flush_batch)
            if not rows:
                return queued
            windows = [
                _Window(r["phone_hash"], r["channel"], r["window_start"], r["area"], r["language"]) for r in rows
            ]
            changes: dict[tuple[str, str], list[asyncpg.Record]] = defaultdict(list)
            nearby: dict[str, list[tuple[float, asyncpg.Record]]] = defaultdict(list)
            for c in await data.window_changes(
                conn,
                phone_hashes=[w.phone_hash for w in windows],
                channels=[w.channel for w in windows],
                window_starts=[w.window_start for w in windows],
            ):
                changes[(c["phone_hash"], c["channel"])].append(c)
            area_phones = [w.phone_hash for w in windows if w.area]
            if area_phones:
                open_now = OpenPoints(await data.open_points(conn))
                subs = await data.area_subscriptions(conn, area_phones)
                for sub, points in zip(subs, open_now.nearest_many(subs, settings.alert_area_points + 1), strict=True):
                    nearby[sub["phone_hash"]] += points
            outgoing: list[sms.Outgoing | None] = []
            made: dict[tuple, str] = {}
            for w in windows:
                body = compose(
                    w,
                    changes[(w.phone_hash, w.channel)],
                    nearby[w.phone_hash] if w.channel == "alert" else [],
                    nearest=settings.alert_area_points,
                    made=made,
                )
                outgoing.append(
                    None
                    if body is None
                    else sms.Outgoing(
                        phone_hash=w.phone_hash,
                        kind="ops" if w.channel == "ops" else "alert",
                        body=body,
                        dedup_key=dedup_key(w.channel, w.phone_hash, w.window_start),
                        traceparent=next(
                            (c["traceparent"] for c in changes[(w.phone_hash, w.channel)] if c["traceparent"]), None
                        ),
                    )
                )
            ids = await sms.enqueue_many(conn, [m for m in outgoing if m is not None])
            sent_keys = {m.dedup_key for m, i in zip([m for m in outgoing if m], ids, strict=True) if i}
            await data.close_windows(
                conn,
                phone_hashes=[w.phone_hash for w in windows],
                channels=[w.channel for w in windows],
                window_starts=[w.window_start for w in windows],
                sent=[m is not None and m.dedup_key in sent_keys for m in outgoing],
                now=moment,
            )
            queued += len(sent_keys)
        if len(rows) < settings.alert_flush_batch:
            return queued
