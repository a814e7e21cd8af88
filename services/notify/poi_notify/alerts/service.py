"""Alerts: learn points, turn status changes into news, plan it into per-phone windows, send one SMS per window.

Three steps, each committed in PostgreSQL so a restart or a redelivered event changes nothing:
1. observe: an event updates alert_points and, if it is news, queues it (with the inbox, exactly once);
2. plan: batches of queued changes become rows of each affected phone's current window (one statement);
3. flush: a window whose time has come becomes ONE message (by sms.service's rules), queued under a key naming the
   window; an area subscriber's message names the nearest points open at that moment.

Urgent (never held back by quiet hours): a point closing or filling up (someone may be on the way there), any
point opened by a coordinator's area activation (a blackout has started), and every ops alert. Non-urgent: a
point opening or having places again on an ordinary report; in quiet hours it waits for their end.
"""

import asyncio
import itertools
import math
from collections import defaultdict
from collections.abc import Iterable
from datetime import UTC, datetime, time, timedelta
from typing import NamedTuple
from zoneinfo import ZoneInfo

import asyncpg
import numpy as np
from scipy.spatial import cKDTree

from poi_notify import cells, data
from poi_notify.alerts import templates
from poi_notify.alerts.areas import AreaIndex
from poi_notify.alerts.templates import CLOSED, FULL, LOW_FUEL, OPENED, PLACES_AGAIN, STALE
from poi_notify.settings import NotifySettings
from poi_notify.sms import service as sms
from poi_shared import db
from poi_shared.contracts import OpenState, PointState, StatusCause, StatusState
from poi_shared.telemetry import current_traceparent
from poi_shared.visibility import public_place

KYIV = ZoneInfo("Europe/Kyiv")
_EARTH_M = 6371008.8  # mean Earth radius


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
    current = await data.lock_point_status(conn, status.point_id)
    newer = current["status_version"] < status.version
    changes, urgent, fuel_hours = [], [], []
    if ops is not None:
        # Ops news is queued even for a version already seen through a changed event: it is its own event.
        changes.append(ops)
        urgent.append(True)
        fuel_hours.append(status.fuel_hours)
    change = transition(current["state"], status.state.value) if newer else None
    if change is not None:
        changes.append(change)
        urgent.append(is_urgent(change, status.cause))
        fuel_hours.append(None)
    if not newer and not changes:
        return
    await data.record_point_status(
        conn,
        point_id=status.point_id,
        status_version=status.version,
        state=status.state.value,
        changed_at=status.changed_at or status.reported_at,
        changes=changes,
        urgent=urgent,
        fuel_hours=fuel_hours,
        traceparent=current_traceparent(),
    )


async def plan(
    pool: asyncpg.Pool, settings: NotifySettings, *, now: datetime | None = None, areas: AreaIndex | None = None
) -> int:
    """Plan every queued change into windows, a batch per transaction; how many changes were planned.

    areas: this replica's index of area subscriptions, kept between calls (a new one loads them all).
    """
    areas = areas if areas is not None else AreaIndex()
    planned = 0
    while True:
        moment = now or datetime.now(UTC)
        async with db.connection(pool) as conn, conn.transaction():
            if not await data.alert_queue_waiting(conn):
                return planned
            batch = await data.lock_alert_batch(conn, batch=settings.alert_plan_batch)
            if not batch:
                return planned  # another replica holds them
            await areas.refresh(conn)
            phones, urgent, at = area_news(areas, batch, now=moment)
            counts = await data.plan_alerts(
                conn,
                ids=[r["id"] for r in batch],
                now=moment,
                gather_s=settings.alert_gather_s,
                quiet_until=quiet_until(moment, settings.alert_quiet_start, settings.alert_quiet_end),
                window_s=settings.alert_window_s,
                area_phones=phones,
                area_urgent=urgent,
            )
        if counts["urgent_area_at"]:
            # Positions (from 1) in the phones sent, and when their windows flush (seconds since the epoch).
            areas.planned(at[np.array(counts["urgent_area_at"]) - 1], np.array(counts["urgent_area_flush_at"]))
        planned += counts["changes"]
        if len(batch) < settings.alert_plan_batch:
            return planned


def area_news(
    areas: AreaIndex, batch: list[asyncpg.Record], *, now: datetime
) -> tuple[list[str], list[bool], np.ndarray]:
    """The phones whose area subscriptions hold a point of the batch that opened, whether that is urgent, and the
    phones as the index numbers them.

    A phone whose urgent area window, planned here, waits anyway for such news is left out: at the start of a blackout
    every batch holds openings near most subscribers, and their windows are written once, not once per batch.
    """
    # Only each point's latest change in the batch counts (a point that opened then closed is no opening).
    latest: dict[object, asyncpg.Record] = {}
    for change in batch:
        seen = latest.get(change["point_id"])
        if change["channel"] == "alert" and (seen is None or seen["status_version"] < change["status_version"]):
            latest[change["point_id"]] = change
    openings = [
        c for c in latest.values() if c["public"] and c["change"] in (OPENED, PLACES_AGAIN) and c["cell"] is not None
    ]
    # A row is found once: the points of a batch lie mostly in the same cities, and each row found is left out of
    # the search for the next point. Urgent news first, so a row found is as urgent as any of its points makes it.
    openings.sort(key=lambda c: not c["urgent"])
    rows, urgent = [], []
    skip = areas.skipping(now)
    for c in openings:
        held = areas.holding(c["lat"], c["lon"], c["cell"], c["services"], c["queued_at"], skip)
        skip[held] = True
        rows.append(held)
        urgent.append(np.full(held.size, c["urgent"]))
    if not rows:
        return [], [], np.empty(0, dtype=np.int64)
    return areas.phones(np.concatenate(rows), np.concatenate(urgent))


def distance_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Haversine distance in metres (as the planner's SQL computes it)."""
    a = (
        math.sin(math.radians(lat2 - lat1) / 2) ** 2
        + math.cos(math.radians(lat1)) * math.cos(math.radians(lat2)) * math.sin(math.radians(lon2 - lon1) / 2) ** 2
    )
    return 2 * _EARTH_M * math.asin(math.sqrt(a))


def _unit_vectors(lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    """Places (degrees) as points on the unit sphere: the nearest by straight line are the nearest on the ground."""
    lat, lon = np.radians(lat), np.radians(lon)
    return np.column_stack((np.cos(lat) * np.cos(lon), np.cos(lat) * np.sin(lon), np.sin(lat)))


class OpenPoints:
    """The points open now, to find the nearest ones to many area subscriptions at once (k-d trees)."""

    def __init__(self, rows: list[asyncpg.Record]) -> None:
        # A point without a public position is never a candidate.
        self.rows = [r for r in rows if r["lat"] is not None and r["lon"] is not None]
        self._lat = np.array([r["lat"] for r in self.rows], dtype=np.float64)
        self._lon = np.array([r["lon"] for r in self.rows], dtype=np.float64)
        # Each point's services as bits, so "offers every service wanted" is one vectorised test.
        self._bit = {s: 1 << i for i, s in enumerate(sorted({s for r in self.rows for s in r["services"]}))}
        self._services = np.array([self._bits(r["services"]) or 0 for r in self.rows], dtype=np.int64)
        self._trees: dict[int, tuple[np.ndarray, cKDTree]] = {}
        # What a message may say of each point changes only with its version.
        self.identity = [(r["point_id"], r["version"]) for r in self.rows]

    def _bits(self, services: Iterable[str]) -> int | None:
        """The services as bits, or None if one of them no open point offers."""
        bits = 0
        for service in services:
            if service not in self._bit:
                return None
            bits |= self._bit[service]
        return bits

    def _tree(self, wanted: int) -> tuple[np.ndarray, cKDTree]:
        """The points offering every service wanted, and a tree of them (cached: few combinations are wanted)."""
        if wanted not in self._trees:
            offering = np.flatnonzero((self._services & wanted) == wanted)
            self._trees[wanted] = (offering, cKDTree(_unit_vectors(self._lat[offering], self._lon[offering])))
        return self._trees[wanted]

    def nearest_many(
        self, lat: np.ndarray, lon: np.ndarray, radius: np.ndarray, services: list[tuple[str, ...]], count: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """For each subscription, up to count open points within its radius offering its services, nearest first.

        Two arrays of shape (subscriptions, count): each point's index in rows (-1 after the last found) and its
        distance in metres (inf after the last found). Arrays, not lists: a flush asks this for a million rows.
        """
        found = np.full((len(services), count), -1, dtype=np.int64)
        distance = np.full((len(services), count), np.inf)
        groups: dict[int, list[int]] = defaultdict(list)
        # Few distinct combinations of services are wanted: each is turned into bits once.
        bits_of: dict[tuple[str, ...], int | None] = {}
        for i, wanted in enumerate(services):
            bits = bits_of[wanted] if wanted in bits_of else bits_of.setdefault(wanted, self._bits(wanted))
            if bits is not None:
                groups[bits].append(i)
        for bits, members in groups.items():
            offering, tree = self._tree(bits)
            if not offering.size:
                continue
            k = min(count, offering.size)
            at = np.array(members)
            # The chord of the largest radius bounds the search; each radius is then checked exactly.
            chord = 2 * np.sin(radius[at].max() / (2 * _EARTH_M)) * (1 + 1e-9)
            _, near = tree.query(_unit_vectors(lat[at], lon[at]), k=[*range(1, k + 1)], distance_upper_bound=chord)
            hit = near < offering.size
            point = offering[np.where(hit, near, 0)]
            # Haversine, in metres, as distance_m computes it.
            la, lo = np.radians(lat[at])[:, None], np.radians(lon[at])[:, None]
            plat, plon = np.radians(self._lat[point]), np.radians(self._lon[point])
            a = np.sin((plat - la) / 2) ** 2 + np.cos(la) * np.cos(plat) * np.sin((plon - lo) / 2) ** 2
            d = 2 * _EARTH_M * np.arcsin(np.sqrt(a))
            hit &= d <= radius[at][:, None]
            # The hits first, each row still nearest first.
            order = np.argsort(~hit, axis=1, kind="stable")
            hit = np.take_along_axis(hit, order, axis=1)
            found[at, :k] = np.where(hit, np.take_along_axis(point, order, axis=1), -1)
            distance[at, :k] = np.where(hit, np.take_along_axis(d, order, axis=1), np.inf)
        return found, distance


def _news(c: asyncpg.Record, change: str, english: bool) -> templates.PointNews:
    return templates.PointNews(
        change=change,
        name=(c["name_en"] if english and c["name_en"] else c["name_uk"]) or c["code"],
        address=(c["address_en"] if english and c["address_en"] else c["address_uk"]) or "",
        settlement=c["settlement"],
        services=tuple(c["services"]),
    )


def compose(
    channel: str,
    language: str,
    changes: list[asyncpg.Record],
    nearby: list[tuple[float, asyncpg.Record]],
    *,
    nearest: int,
) -> str | None:
    """A window's message (its points' changes, the nearest open points), or None if nothing is worth telling."""
    english = language == "en"
    if channel == "ops":
        items = [
            templates.OpsNews(change=c["change"], code=c["code"], name=c["name_uk"], fuel_hours=c["fuel_hours"])
            for c in changes
            if not c["retired"]
        ]
        return templates.ops_body(language, items) if items else None
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
    return templates.alert_body(
        language,
        [_news(c, c["change"], english) for c in told],
        [_news(point, templates.OPENED, english) for _, point in near],
    )


async def flush(
    pool: asyncpg.Pool, settings: NotifySettings, *, now: datetime | None = None, areas: AreaIndex | None = None
) -> int:
    """Queue the one message of every due window, a batch per transaction; how many messages were queued.

    areas: this replica's index of area subscriptions, kept between calls (a new one loads them all).
    """
    areas = areas if areas is not None else AreaIndex()
    async with db.connection(pool) as conn:
        # Batches of phones in key order: each touches a narrow range of every index keyed by phone (windows,
        # phones, the messages' dedup keys), which the database then reads and writes page by page, not once per phone.
        due = await data.due_ranges(conn, now=now or datetime.now(UTC), batch=settings.alert_flush_batch)
        if not due:
            return 0
        # The points open as this call began: one read for every batch of the call.
        open_now = OpenPoints(await data.open_points(conn))
    batches = iter(due)

    async def worker() -> int:
        queued = 0
        for first, last in batches:  # shared: each batch goes to one worker
            queued += await _flush_batch(pool, settings, first, last, now=now, areas=areas, open_now=open_now)
        return queued

    # Several workers, each with its own connection and transactions (as replicas would): one composes while
    # the database writes another's batch.
    async with asyncio.TaskGroup() as group:
        tasks = [group.create_task(worker()) for _ in range(settings.alert_flush_workers)]
    return sum(task.result() for task in tasks)


class DueWindows(NamedTuple):
    """A flusher's batch of windows (data.due_windows), column by column: a million windows read as rows would
    cost the flusher more than everything else it does with them."""

    phone_hash: list[str]
    channel: list[str]
    area: list[bool]
    told: list[bool]  # the window holds news of single points (alert_changes); most hold only area news
    language: list[str]
    latin: list[bool]
    stopped: list[bool]
    confirmed: list[bool]
    is_contact: list[bool]


async def _flush_batch(
    pool: asyncpg.Pool,
    settings: NotifySettings,
    first: str,
    last: str,
    *,
    now: datetime | None,
    areas: AreaIndex,
    open_now: OpenPoints,
) -> int:
    """Queue the messages of the due windows of the phones first to last in one transaction; how many were queued."""
    moment = now or datetime.now(UTC)
    async with db.connection(pool) as conn, conn.transaction():
        await data.tune_for_bulk(conn, phone_range=True)
        # Another flusher may hold some (or have sent them meanwhile): those are left to it.
        due = await data.due_windows(conn, first=first, last=last, now=moment)
        if not due["phone_hash"]:
            return 0
        windows = DueWindows(*(due[column] for column in DueWindows._fields))
        changes: dict[tuple[str, str], list[asyncpg.Record]] = defaultdict(list)
        told = [i for i, told in enumerate(windows.told) if told]
        if told:
            for c in await data.window_changes(
                conn,
                phone_hashes=[windows.phone_hash[i] for i in told],
                channels=[windows.channel[i] for i in told],
            ):
                changes[(c["phone_hash"], c["channel"])].append(c)
        if any(windows.area):
            await areas.refresh(conn)
        # Each distinct message once, as sent (Latin for numbers that asked for it), with its parts: many phones get
        # the same one. A window gets its message's position (from 1), or 0 if it has none or its phone may not get it.
        texts: dict[tuple[str, str, bool], int] = {}
        bodies, said = _bodies(windows, changes, areas, open_now, settings)
        text_of = [0] * len(bodies)
        columns = (windows.channel, windows.latin, windows.stopped, windows.confirmed, windows.is_contact)
        for i, (body, channel, latin, stopped, confirmed, is_contact) in enumerate(zip(bodies, *columns, strict=True)):
            kind = "ops" if channel == "ops" else "alert"
            if body is not None and sms.may_send(kind, stopped=stopped, confirmed=confirmed, is_contact=is_contact):
                key = (kind, body, latin)
                text_of[i] = texts[key] if key in texts else texts.setdefault(key, len(texts) + 1)
        # A message joins the trace of the first change it tells that came with one.
        traceparents: list[str | None] = [None] * len(bodies)
        for i in told:
            told_here = changes.get((windows.phone_hash[i], windows.channel[i]), [])
            traceparents[i] = next((c["traceparent"] for c in told_here if c["traceparent"]), None)
        fitted = [sms.fit(kind, body, latin=latin) for kind, body, latin in texts]
        kinds = [kind for kind, _, _ in texts]
        queued = await data.flush_windows(
            conn,
            phone_hashes=windows.phone_hash,
            channels=windows.channel,
            text_of=text_of,
            traceparents=traceparents,
            kinds=kinds,
            texts=[body for body, _ in fitted],
            parts=[count for _, count in fitted],
            ids=sms.time_ordered_ids(len(windows.phone_hash)),
            now=moment,
            first=first,
            last=last,
        )
    # Committed: what each area window queued is what its phone was last told.
    sent = [said[i] for i, position in enumerate(text_of) if position and said[i] is not None]
    if sent:
        rows, text_ids = zip(*sent, strict=True)
        areas.queued(np.array(rows), np.array(text_ids))
    return queued


# The texts of messages that only name nearby open points, by language, how many points they count and the points
# they name (id and version), each with an id. The next flush mostly sends the same ones again; forgotten all at once
# when full (ids are never reused, so a phone's last text is never mistaken for another).
_AREA_TEXTS: dict[tuple, tuple[str | None, int]] = {}
_AREA_TEXTS_MAX = 131_072
_TEXT_IDS = itertools.count(1)


def _bodies(
    windows: DueWindows,
    changes: dict[tuple[str, str], list[asyncpg.Record]],
    areas: AreaIndex,
    open_now: OpenPoints,
    settings: NotifySettings,
) -> tuple[list[str | None], list[tuple[int, int] | None]]:
    """Each window's message, as compose makes it, and for an area window its phone's area row and the text's id
    (0 for a text not kept), for the index to remember once queued.

    A window told only of its phone's one area (most, at the start of a blackout) is told that area's nearest open
    points: such windows are grouped by language and points, and each group's message is composed once. Such a
    window whose text is the very one its phone was last sent has nothing to tell and is forgotten unsent: at the
    start of a blackout most phones hear of openings after their first message, and often the nearest points (and
    the count, which stops at alert_area_points + 1) are still those it named.
    """
    nearest = settings.alert_area_points

    def compose_for(i: int, nearby: list[tuple[float, asyncpg.Record]]) -> str | None:
        told = changes.get((windows.phone_hash[i], windows.channel[i]), [])
        return compose(windows.channel[i], windows.language[i], told, nearby, nearest=nearest)

    bodies = [None if area else compose_for(i, []) for i, area in enumerate(windows.area)]
    said: list[tuple[int, int] | None] = [None] * len(bodies)
    area = [i for i, area in enumerate(windows.area) if area]
    if not area:
        return bodies, said
    at, subs = areas.of_phones([windows.phone_hash[i] for i in area])
    lat, lon, radius = areas.places(subs)
    services = [areas.services[row] for row in subs.tolist()]
    found, distance = open_now.nearest_many(lat, lon, radius, services, nearest + 1)

    def nearby(rows: Iterable[int]) -> list[tuple[float, asyncpg.Record]]:
        return [
            (d, open_now.rows[p])
            for row in rows
            for p, d in zip(found[row].tolist(), distance[row].tolist(), strict=True)
            if p >= 0
        ]

    # The area rows of area[j] are first[j]:first[j + 1] (of_phones keeps the phones' order).
    first = np.searchsorted(at, np.arange(len(area) + 1)).tolist()
    lone: list[int] = []
    for j, i in enumerate(area):
        if first[j + 1] - first[j] == 1 and not windows.told[i]:
            lone.append(j)
        else:
            bodies[i] = compose_for(i, nearby(range(first[j], first[j + 1])))
            if first[j + 1] > first[j]:
                said[i] = (int(subs[first[j]]), 0)
    if lone:
        rows = np.array([first[j] for j in lone])
        # What such a message says, as one number: how many points it counts and the points it names (as
        # templates.alert_body; nearest_many found the points nearest first, each once), then its language.
        says = counted = (found[rows] >= 0).sum(axis=1)
        for column in range(templates.MOST_NAMED):
            says = says * (len(open_now.rows) + 1) + found[rows, column] + 1
        names = sorted({windows.language[area[j]] for j in lone})
        language = {name: n for n, name in enumerate(names)}
        says = says * len(names) + np.array([language[windows.language[area[j]]] for j in lone])
        _, sample, group = np.unique(says, return_index=True, return_inverse=True)
        texts = []
        for k in sample.tolist():
            i, row = area[lone[k]], int(rows[k])
            named = found[row, : templates.MOST_NAMED].tolist()
            key = (windows.language[i], int(counted[k]), *(open_now.identity[p] for p in named if p >= 0))
            if key not in _AREA_TEXTS:
                if len(_AREA_TEXTS) >= _AREA_TEXTS_MAX:
                    _AREA_TEXTS.clear()
                _AREA_TEXTS[key] = (compose_for(i, nearby((row,))), next(_TEXT_IDS))
            texts.append(_AREA_TEXTS[key])
        area_rows = subs[rows]
        last = areas.last_texts(area_rows).tolist()
        for j, g, row, before in zip(lone, group.ravel().tolist(), area_rows.tolist(), last, strict=True):
            body, text_id = texts[g]
            if text_id != before:
                bodies[area[j]] = body
                said[area[j]] = (row, text_id)
    return bodies, said
