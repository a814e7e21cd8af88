"""Area subscriptions in memory, by the H3 cell of their centre: whom a point opening concerns, without a scan.

PostgreSQL stays the source of truth. A replica loads every area subscription once, then, before each use, reads
only those added or removed since its last look, found by the transaction that wrote them (migration 0007): a
transaction still running at one look is read at the next, so a subscription committed late is never missed.
"""

import asyncio
import math
import time
from collections.abc import Iterable
from datetime import datetime
from uuid import UUID

import asyncpg
import h3.api.basic_int as h3
import numpy as np

from poi_notify import cells, data

EARTH_M = 6371008.8  # mean Earth radius, as every distance in alerts
# Removals are kept this long; a replica that has not looked for half of it loads everything again.
REMOVALS_KEPT_S = 86_400.0
# An urgent window this replica planned is trusted to be still waiting until this long before its flush time: more
# than the clocks of two replicas can differ, so no flusher can have sent it yet. (Nothing brings an urgent window's
# flush time forward; a non-urgent one's moves when urgent news comes, perhaps through another replica.)
PENDING_MARGIN_S = 5.0
_RING_M = h3.average_hexagon_edge_length(cells.RESOLUTION, unit="m") * math.sqrt(3)


def rings_of(radius_m: np.ndarray) -> np.ndarray:
    """How many rings round its centre's cell a disk can reach (as cells.cells_covering counts them)."""
    return (np.ceil(radius_m / _RING_M) + 1).astype(np.int64)


def _widened(values: np.ndarray, size: int, *, fill: int = 0) -> np.ndarray:
    """The values followed by fill, size in all."""
    grown = np.full(size, fill, dtype=values.dtype)
    grown[: len(values)] = values
    return grown


class AreaIndex:
    """Every area subscription, by the cell of its centre; state, because loading a million takes seconds."""

    def __init__(self) -> None:
        # The planner and the flusher share the index: one look at a time, or a row read before its removal
        # committed could be added back after another look removed it.
        self._lock = asyncio.Lock()
        self._reset()

    def _reset(self) -> None:
        # By the subscription's id as an integer: a million UUID objects would be walked by every full collection
        # of the garbage collector (integers are not tracked by it).
        self._row: dict[int, int] = {}
        self._size = 0
        self._lat_r = np.empty(0)  # radians
        self._lon_r = np.empty(0)
        self._cell = np.empty(0, dtype=np.int64)  # the centre's cell
        self._radius = np.empty(0)
        self._rings = np.empty(0, dtype=np.int8)
        self._created = np.empty(0)  # seconds since the epoch
        self._wants = np.empty(0, dtype=np.int64)  # the services wanted, as bits (see _bits)
        self._phone = np.empty(0, dtype=np.int32)  # index into _phones
        self.services: list[tuple[str, ...]] = []  # per row, as subscribed
        self._phones: list[str] = []
        self._phone_id: dict[str, int] = {}
        # A phone's rows: the first in _first (by phone index, -1 if none left), any others in _more (a phone
        # rarely has two areas; a million lists would cost more memory than all the coordinates).
        self._first = np.empty(0, dtype=np.int64)
        self._more: dict[int, list[int]] = {}
        # By phone: when the urgent area window this replica planned for it flushes (seconds since the epoch, 0 if
        # none known). News such a window takes anyway is not sent to the database again.
        self._pending_until = np.empty(0)
        # By phone: the text (an id from alerts.service) of the last area message this replica queued for it, 0 if
        # none known. The same words are not sent again (see alerts.service._bodies).
        self._last_text = np.empty(0, dtype=np.int64)
        # The rows whose centre lies in the cell, those reaching furthest first, and how many reach each ring
        # round it (reach[d]: the first reach[d] rows reach ring d): a point d rings away takes a slice, not a filter.
        self._cells: dict[int, tuple[np.ndarray, list[int]]] = {}
        self._bit: dict[str, int] = {}
        self._max_rings = 0
        self._watermark: int | None = None
        self._looked_at = 0.0

    def __len__(self) -> int:
        return len(self._row)

    def _bits(self, services: Iterable[str]) -> int:
        bits = 0
        for service in services:
            if service not in self._bit:
                self._bit[service] = 1 << len(self._bit)
            bits |= self._bit[service]
        return bits

    async def refresh(self, conn: asyncpg.Connection) -> None:
        """Take in what committed since the last look (everything at the first, or after a long pause)."""
        async with self._lock:
            await self._look(conn)

    async def _look(self, conn: asyncpg.Connection) -> None:
        if self._watermark is not None and time.monotonic() - self._looked_at > REMOVALS_KEPT_S / 2:
            self._reset()
        since = self._watermark
        # Taken before the rows are read: a transaction running now is read again at the next look.
        watermark = await data.oldest_running_txid(conn)
        async for rows in data.area_subscriptions_since(conn, since or 0):
            self._add(rows)
        if since is not None:
            for removed in await data.area_removals_since(conn, since):
                self._remove(removed)
        self._watermark, self._looked_at = watermark, time.monotonic()

    def _phone_of(self, phone_hash: str) -> int:
        phone = self._phone_id.get(phone_hash)
        if phone is None:
            phone = self._phone_id[phone_hash] = len(self._phones)
            self._phones.append(phone_hash)
            if phone >= len(self._first):
                size = max(2 * len(self._first), 1024)
                self._first = _widened(self._first, size, fill=-1)
                self._pending_until = _widened(self._pending_until, size)
                self._last_text = _widened(self._last_text, size)
        return phone

    def _grow(self, size: int) -> None:
        if size <= len(self._lat_r):
            return
        capacity = max(size, 2 * len(self._lat_r), 1024)
        for name in ("_lat_r", "_lon_r", "_cell", "_radius", "_rings", "_created", "_wants", "_phone"):
            setattr(self, name, _widened(getattr(self, name), capacity))

    def _add(self, rows: list[asyncpg.Record]) -> None:
        rows = [r for r in rows if r["id"].int not in self._row]  # a late transaction's rows are read twice
        if not rows:
            return
        start, end = self._size, self._size + len(rows)
        self._grow(end)
        lat = np.array([r["lat"] for r in rows], dtype=np.float64)
        lon = np.array([r["lon"] for r in rows], dtype=np.float64)
        radius = np.array([r["radius_m"] for r in rows], dtype=np.float64)
        self._lat_r[start:end], self._lon_r[start:end] = np.radians(lat), np.radians(lon)
        self._radius[start:end] = radius
        self._rings[start:end] = rings_of(radius)
        self._created[start:end] = [r["created_at"].timestamp() for r in rows]
        self._wants[start:end] = [self._bits(r["services"]) for r in rows]
        self._max_rings = max(self._max_rings, int(self._rings[start:end].max()))
        self._row.update(zip((r["id"].int for r in rows), range(start, end), strict=True))
        self.services.extend(tuple(r["services"]) for r in rows)
        for row, r in enumerate(rows, start):
            phone = self._phone[row] = self._phone_of(r["phone_hash"])
            if self._first[phone] < 0:
                self._first[phone] = row
            else:
                self._more.setdefault(phone, []).append(row)
        centre = np.array(
            [h3.latlng_to_cell(la, lo, cells.RESOLUTION) for la, lo in zip(lat.tolist(), lon.tolist(), strict=True)],
            dtype=np.int64,
        )
        self._cell[start:end] = centre
        # Grouped by cell with one sort rather than a dictionary update per row (a million rows at start).
        order = np.argsort(centre, kind="stable")
        found, first = np.unique(centre[order], return_index=True)
        for cell, members in zip(found.tolist(), np.split(order + start, first[1:]), strict=True):
            held = self._cells.get(cell)
            self._file(cell, members if held is None else np.concatenate((held[0], members)))
        self._size = end

    def _remove(self, subscription_id: UUID) -> None:
        row = self._row.pop(subscription_id.int, None)
        if row is None:
            return
        phone = int(self._phone[row])
        others = self._more.get(phone, [])
        if self._first[phone] == row:
            self._first[phone] = others.pop(0) if others else -1
        else:
            others.remove(row)
        if not others:
            self._more.pop(phone, None)
        cell = int(self._cell[row])
        held = self._cells[cell][0]
        self._file(cell, held[held != row])

    def _file(self, cell: int, rows: np.ndarray) -> None:
        """Keep the cell's rows, those reaching furthest first, with how many reach each ring round it."""
        order = np.argsort(-self._rings[rows], kind="stable")
        rows = rows[order]
        rings = self._rings[rows]
        reach = [int(np.count_nonzero(rings >= distance)) for distance in range(int(rings.max(initial=0)) + 1)]
        self._cells[cell] = (rows, reach)

    def waiting(self, now: datetime) -> np.ndarray:
        """By phone: whether an urgent area window planned here still waits at now (and so takes any news)."""
        return self._pending_until > now.timestamp() + PENDING_MARGIN_S

    def skipping(self, now: datetime) -> np.ndarray:
        """By row: whether the row's phone has an urgent area window planned here that still waits at now; holding
        leaves such rows out, and the caller marks more as it finds them."""
        return self.waiting(now)[self._phone]

    def planned(self, phones: np.ndarray, flush_at: np.ndarray) -> None:
        """Remember the urgent area windows the planner just wrote (each takes any news until it flushes).

        phones: as phones() numbers them; flush_at: seconds since the epoch.
        """
        self._pending_until[phones] = flush_at

    def last_texts(self, rows: np.ndarray) -> np.ndarray:
        """By row: the text of the last area message this replica queued for the row's phone (0 if none known)."""
        return self._last_text[self._phone[rows]]

    def queued(self, rows: np.ndarray, texts: np.ndarray) -> None:
        """Remember the area messages just queued for the rows' phones (0: one that is not to be compared)."""
        self._last_text[self._phone[rows]] = texts

    def holding(
        self,
        lat: float,
        lon: float,
        cell: int,
        services: Iterable[str],
        before: datetime,
        skip: np.ndarray | None = None,
    ) -> np.ndarray:
        """The rows whose disk holds the point and whose services it offers, subscribed no later than before.

        skip: by row, those to leave out (see skipping).
        """
        # A disk reaches the point's cell if the point's cell is among those covering it (as cells_covering counts):
        # of a cell d rings away, the rows reaching ring d.
        found = []
        for distance in range(self._max_rings + 1):
            for near in h3.grid_ring(cell, distance):
                held = self._cells.get(near)
                if held is not None and distance < len(held[1]) and held[1][distance]:
                    found.append(held[0][: held[1][distance]])
        if not found:
            return np.empty(0, dtype=np.int64)
        rows = np.concatenate(found)
        if skip is not None:
            rows = rows[~skip[rows]]
        offered = self._bits(services)
        rows = rows[((self._wants[rows] & ~offered) == 0) & (self._created[rows] <= before.timestamp())]
        lat, lon = math.radians(lat), math.radians(lon)
        # Haversine, in metres.
        a = (
            np.sin((lat - self._lat_r[rows]) / 2) ** 2
            + np.cos(self._lat_r[rows]) * math.cos(lat) * np.sin((lon - self._lon_r[rows]) / 2) ** 2
        )
        return rows[2 * EARTH_M * np.arcsin(np.sqrt(a)) <= self._radius[rows]]

    def phones(self, rows: np.ndarray, urgent: np.ndarray) -> tuple[list[str], list[bool], np.ndarray]:
        """The phones of the rows, once each, with whether any of their rows' news is urgent, and their numbers here."""
        held = np.zeros(len(self._phones), dtype=bool)
        held[self._phone[rows]] = True
        pressing = np.zeros(len(self._phones), dtype=bool)
        pressing[self._phone[rows[urgent]]] = True
        phones = np.flatnonzero(held)
        return [self._phones[p] for p in phones.tolist()], pressing[phones].tolist(), phones

    def of_phones(self, phone_hashes: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """The phones' area subscriptions: each one's phone as a position in phone_hashes, and their rows."""
        at: list[int] = []
        rows: list[int] = []
        for i, phone_hash in enumerate(phone_hashes):
            phone = self._phone_id.get(phone_hash)
            if phone is None or self._first[phone] < 0:
                continue
            at.append(i)
            rows.append(int(self._first[phone]))
            for row in self._more.get(phone, ()):
                at.append(i)
                rows.append(row)
        return np.array(at, dtype=np.int64), np.array(rows, dtype=np.int64)

    def places(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The rows' centres (degrees) and radii (metres)."""
        return np.degrees(self._lat_r[rows]), np.degrees(self._lon_r[rows]), self._radius[rows]
