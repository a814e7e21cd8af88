"""The in-memory read model: every point with its status in compact slots, a spatial index and a text index.

Each point has a slot: a `Record` with its pre-serialised JSON pieces, and one entry in each array below (its
position on the unit sphere, a flags word answering every filter, when its status was confirmed, the stream
sequences of its last events). The spatial index is a grid over the visible points (see grid.py), searched by
unit-sphere chord length, which orders exactly as great-circle distance. Live updates do not rebuild it: a point
that appears or moves is marked dirty and searched by brute force beside the grid until `merge_index` (on a timer,
or when too many are dirty) rebuilds it. A status change only rewrites its slot's pieces and flags.

Everything runs on the event loop: applying an event and answering a query never interleave.
"""

import math
from dataclasses import dataclass

import numpy as np

from poi_search.catalog.grid import GridIndex, squared_chords
from poi_search.catalog.records import (
    FREE,
    INDEXED,
    POINT_BITS,
    STATE_BITS,
    STATUS_BITS,
    VISIBLE,
    Record,
    point_bits,
    public_point,
    status_bits,
    status_pieces,
)
from poi_search.catalog.text import TextIndex
from poi_shared.contracts import OpenState, PointState, StatusState

EARTH_RADIUS_M = 6_371_008.8
MIN_TEXT_SCORE = 50.0  # at least half the query's words match well
DISTANCE_BIAS = 5.0  # text ranking: score points lost per decade of kilometres away


@dataclass(frozen=True, slots=True)
class Filters:
    """What a point must be to be answered; every query applies VISIBLE."""

    required: int = VISIBLE  # every one of these bits
    states: int = 0  # any of these state bits (0: any state)
    categories: int = 0  # any of these category bits (0: any category)
    reported_since: float | None = None  # status confirmed at or after this epoch second
    katotth: str | None = None  # KATOTTH code prefix


@dataclass(frozen=True, slots=True)
class Box:
    """A longitude/latitude box, west to east and south to north."""

    west: float
    south: float
    east: float
    north: float


@dataclass(frozen=True, slots=True)
class Change:
    """One entry of the change feed: a slot, and whether the point is gone for the public."""

    slot: int
    removed: bool


def unit_vector(lat: float, lon: float) -> np.ndarray:
    """The point on the unit sphere."""
    la, lo = math.radians(lat), math.radians(lon)
    return np.array((math.cos(la) * math.cos(lo), math.cos(la) * math.sin(lo), math.sin(la)))


def chord_of(metres: float) -> float:
    """The straight-line distance between two points of the unit sphere that far apart on the Earth."""
    return 2 * math.sin(min(metres / EARTH_RADIUS_M, math.pi) / 2)


def metres_of(chords: np.ndarray) -> np.ndarray:
    """Great-circle metres of unit-sphere chord lengths."""
    return 2 * EARTH_RADIUS_M * np.arcsin(np.minimum(chords / 2, 1.0))


class ReadModel:
    """Points and statuses by id, in slots; events not newer than what a slot holds are skipped."""

    def __init__(self, *, index_delta_max: int = 1024) -> None:
        self.index_delta_max = index_delta_max
        self.records: list[Record] = []
        self._slots: dict[str, int] = {}
        self._capacity = 0
        self._xyz = np.empty((0, 3))
        self._lat = np.empty(0)
        self._lon = np.empty(0)
        self._flags = np.empty(0, dtype=np.int64)
        self._reported = np.empty(0)
        self._point_seq = np.empty(0, dtype=np.int64)
        self._status_seq = np.empty(0, dtype=np.int64)
        self._katotth = np.empty(0, dtype="S19")  # ASCII codes as bytes: a quarter of the memory of str
        self._grid: GridIndex | None = None
        self._dirty: set[int] = set()
        self._by_id: tuple[np.ndarray, np.ndarray] | None = None  # (slots, ids) sorted by id
        self.text = TextIndex()
        self.point_count = 0
        self.status_count = 0

    # ----- applying events -----

    def apply_point(self, point: PointState, seq: int) -> bool:
        """Take a point event (seq: its stream sequence) unless it is a repeat or older than what is held."""
        point_id = str(point.id)
        slot = self._slot(point_id)
        record = self.records[slot]
        if record.point_version >= point.version:
            return False
        if record.point_version == 0:
            self.point_count += 1
        record.point_version = point.version
        was_visible = record.point is not None
        shown = public_point(point, point_id)
        flags = int(self._flags[slot]) & ~POINT_BITS
        if shown is None:
            record.point = None
            flags &= ~INDEXED
            self._dirty.discard(slot)
            self.text.remove(slot)
        else:
            public = shown.point
            flags |= VISIBLE | point_bits(point)
            xyz = unit_vector(public.lat, public.lon)
            if not was_visible or not np.array_equal(self._xyz[slot], xyz):
                flags &= ~INDEXED
                self._dirty.add(slot)
            self._xyz[slot], self._lat[slot], self._lon[slot] = xyz, public.lat, public.lon
            self.text.put(slot, shown.texts)
        record.compose(shown)
        self._flags[slot] = self._with_free(record, flags)
        self._katotth[slot] = point.katotth.encode()
        self._point_seq[slot] = seq
        if len(self._dirty) >= self.index_delta_max:
            self.merge_index()
        return True

    def apply_status(self, status: StatusState, seq: int) -> bool:
        """Take a status event unless it is a repeat or older than what is held."""
        slot = self._slot(str(status.point_id))
        record = self.records[slot]
        if record.status_version >= status.version:
            return False
        if record.status_version == 0:
            self.status_count += 1
        record.status_version = status.version
        record.status_head, record.status_tail = status_pieces(status)
        record.reported_at = status.reported_at.timestamp()
        record.state, record.occupancy = status.state, status.occupancy
        flags = (int(self._flags[slot]) & ~STATUS_BITS) | status_bits(status)
        self._flags[slot] = self._with_free(record, flags)
        self._reported[slot] = record.reported_at
        self._status_seq[slot] = seq
        record.compose()
        return True

    @staticmethod
    def _with_free(record: Record, flags: int) -> int:
        return flags | FREE if record.has_free_places() else flags & ~FREE

    def merge_index(self) -> None:
        """Rebuild the spatial index over every visible point, so none is searched by brute force any more."""
        if not self._dirty:
            return
        visible = np.flatnonzero(self._flags[: len(self.records)] & VISIBLE)
        indexed = (
            GridIndex(visible, self._lat[visible], self._lon[visible], self._xyz[visible]) if len(visible) else None
        )
        self._grid = indexed
        self._flags[visible] |= INDEXED
        self._dirty.clear()

    def _slot(self, point_id: str) -> int:
        """The point's slot, made on first sight."""
        slot = self._slots.get(point_id)
        if slot is not None:
            return slot
        slot = len(self.records)
        if slot == self._capacity:
            self._grow()
        self.records.append(Record(point_id))
        self._slots[point_id] = slot
        self._flags[slot] = STATE_BITS[OpenState.unknown]  # no status yet: unknown, as the answer says
        self._reported[slot] = math.nan
        self._point_seq[slot] = self._status_seq[slot] = 0
        self._katotth[slot] = b""
        self._by_id = None
        return slot

    def _grow(self) -> None:
        capacity = max(1024, self._capacity * 2)

        def grown(array: np.ndarray) -> np.ndarray:
            bigger = np.zeros((capacity, *array.shape[1:]), dtype=array.dtype)
            bigger[: self._capacity] = array
            return bigger

        self._xyz, self._lat, self._lon = grown(self._xyz), grown(self._lat), grown(self._lon)
        self._flags, self._reported, self._katotth = grown(self._flags), grown(self._reported), grown(self._katotth)
        self._point_seq, self._status_seq = grown(self._point_seq), grown(self._status_seq)
        self._capacity = capacity

    # ----- queries -----

    def slot_of(self, point_id: str) -> int | None:
        """The slot of a point id (any record, visible or not)."""
        return self._slots.get(point_id)

    def visible(self, slot: int) -> bool:
        """Whether the public may see the slot's point."""
        return bool(self._flags[slot] & VISIBLE)

    def position(self, slot: int) -> tuple[float, float]:
        """(lat, lon) of a visible point as the public sees it."""
        return float(self._lat[slot]), float(self._lon[slot])

    def nearest(
        self, lat: float, lon: float, *, limit: int, radius_m: float, filters: Filters
    ) -> tuple[np.ndarray, np.ndarray]:
        """(slots, metres) of the matching points nearest to (lat, lon) within radius_m, nearest first."""
        target, bound = unit_vector(lat, lon), chord_of(radius_m)
        found_slots: list[np.ndarray] = []
        found_chords: list[np.ndarray] = []
        if self._grid is not None:
            # The grid holds a moved point at its old place: only those whose place it holds (INDEXED) count there.
            slots, chords = self._grid.nearest(
                lat, lon, target, limit=limit, bound=bound, matches=lambda slots: self._match(slots, filters, INDEXED)
            )
            found_slots.append(slots)
            found_chords.append(chords)
        if self._dirty:
            candidates = np.fromiter(self._dirty, dtype=np.int64, count=len(self._dirty))
            candidates = candidates[self._match(candidates, filters)]
            # As the grid measures: which of two points at one place is still unindexed never changes the answer.
            chords = np.sqrt(np.maximum(squared_chords(self._xyz[candidates], target), 0.0))
            inside = chords <= bound
            found_slots.append(candidates[inside])
            found_chords.append(chords[inside])
        if not found_slots:
            return np.empty(0, dtype=np.int64), np.empty(0)
        if len(found_slots) == 1 and self._grid is not None:
            slots, chords = found_slots[0], found_chords[0]  # the grid's answer, already ordered and cut
        else:
            slots, chords = np.concatenate(found_slots), np.concatenate(found_chords)
            order = np.lexsort((slots, chords))[:limit]  # equally near points by slot, as the grid orders them
            slots, chords = slots[order], chords[order]
        return slots, metres_of(chords)

    def within(self, box: Box, *, filters: Filters, limit: int) -> tuple[np.ndarray, int]:
        """(slots, how many match) of matching points in the box, at most limit, nearest its centre first."""
        size = len(self.records)
        lat, lon = self._lat[:size], self._lon[:size]
        ok = self._match_all(filters) & (lat >= box.south) & (lat <= box.north) & (lon >= box.west)
        ok &= lon <= box.east
        slots = np.flatnonzero(ok)
        if len(slots) > limit:
            centre = unit_vector((box.south + box.north) / 2, (box.west + box.east) / 2)
            chords = np.linalg.norm(self._xyz[slots] - centre, axis=1)
            slots = slots[np.argsort(chords, kind="stable")[:limit]]
        return slots, int(ok.sum())

    def search_text(
        self, query: str, *, filters: Filters, limit: int, near: tuple[float, float] | None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """(slots, scores, metres or None) of the points best matching the text, best first; nearer ranks higher."""
        size = len(self.records)
        scores = self.text.scores(query, size)
        slots = np.flatnonzero(self._match_all(filters) & (scores >= MIN_TEXT_SCORE))
        scores = scores[slots]
        metres = None
        rank = scores.astype(np.float64)
        if near is not None:
            metres = metres_of(np.linalg.norm(self._xyz[slots] - unit_vector(*near), axis=1))
            rank = rank - DISTANCE_BIAS * np.log10(1 + metres / 1000)
        order = np.argsort(-rank, kind="stable")[:limit]
        return slots[order], scores[order], None if metres is None else metres[order]

    def page_by_id(
        self, *, filters: Filters, box: Box | None, after: str | None, limit: int
    ) -> tuple[np.ndarray, int, bool]:
        """(slots, how many match in all, whether more follow) of matching points ordered by id, after an id.

        Ordering by id, the same on every replica, lets a client page through replicas behind a load balancer.
        """
        slots, ids = self._ordered_by_id()
        ok = self._match_all(filters)
        if box is not None:
            lat, lon = self._lat[: len(self.records)], self._lon[: len(self.records)]
            ok &= (lat >= box.south) & (lat <= box.north) & (lon >= box.west) & (lon <= box.east)
        matching = ok[slots]
        start = int(np.searchsorted(ids, after.encode(), side="right")) if after else 0
        rest = slots[start:][matching[start:]]
        return rest[:limit], int(matching.sum()), len(rest) > limit

    def _ordered_by_id(self) -> tuple[np.ndarray, np.ndarray]:
        if self._by_id is None:
            ids = np.array([r.id.encode() for r in self.records], dtype="S36")
            order = np.argsort(ids, kind="stable")
            self._by_id = order, ids[order]
        return self._by_id

    def changes(self, *, after_points: int, after_status: int, limit: int) -> tuple[list[Change], int, int, bool]:
        """A page of the change feed after a cursor: (changes, next points sequence, next status sequence, more).

        A cursor is the pair of stream sequences (points, status) up to which the client holds every change; every
        replica rebuilds the same sequences per point from the streams, so a cursor works on all of them. Points
        whose point event is newer come first, in stream order (a hidden or retired point as a removal), each with
        its current status; then visible points whose status event alone is newer, in stream order.
        """
        size = len(self.records)
        point_seq, status_seq = self._point_seq[:size], self._status_seq[:size]
        points_head = max(after_points, int(point_seq.max(initial=0)))
        status_head = max(after_status, int(status_seq.max(initial=0)))
        newer = np.flatnonzero(point_seq > after_points)
        newer = newer[np.argsort(point_seq[newer], kind="stable")]
        taken = newer[:limit]
        changes = [Change(int(s), not self.visible(int(s))) for s in taken]
        next_points = int(point_seq[taken[-1]]) if len(newer) > limit else points_head
        if len(newer) > limit:
            return changes, next_points, after_status, True
        # Points with a newer point event after next_points come later with their status; skip them here.
        room = limit - len(changes)
        seen = set(taken.tolist())
        visible = (self._flags[:size] & VISIBLE) != 0
        status_newer = np.flatnonzero((status_seq > after_status) & (point_seq <= next_points) & visible)
        status_newer = status_newer[np.argsort(status_seq[status_newer], kind="stable")]
        fresh = [int(s) for s in status_newer if int(s) not in seen]
        changes += [Change(s, False) for s in fresh[:room]]
        if len(fresh) > room:
            last = fresh[room - 1] if room else None
            next_status = int(status_seq[last]) if last is not None else after_status
            return changes, next_points, next_status, True
        return changes, next_points, status_head, False

    def heads(self) -> tuple[int, int]:
        """The highest (points, status) stream sequences applied to any slot."""
        size = len(self.records)
        return int(self._point_seq[:size].max(initial=0)), int(self._status_seq[:size].max(initial=0))

    def visible_slots(self) -> np.ndarray:
        """Every visible slot, ordered by id."""
        slots, _ = self._ordered_by_id()
        return slots[(self._flags[slots] & VISIBLE) != 0]

    def extent(self) -> Box | None:
        """The box around every visible point."""
        size = len(self.records)
        visible = (self._flags[:size] & VISIBLE) != 0
        if not visible.any():
            return None
        lat, lon = self._lat[:size][visible], self._lon[:size][visible]
        return Box(float(lon.min()), float(lat.min()), float(lon.max()), float(lat.max()))

    def _match(self, slots: np.ndarray, filters: Filters, also: int = 0) -> np.ndarray:
        """Which of the slots pass the filters (and have the flags also)."""
        flags = self._flags[slots]
        required = filters.required | also
        ok = (flags & required) == required
        if filters.states:
            ok &= (flags & filters.states) != 0
        if filters.categories:
            ok &= (flags & filters.categories) != 0
        if filters.reported_since is not None:
            ok &= self._reported[slots] >= filters.reported_since  # NaN (no status) never passes
        if filters.katotth:
            ok &= np.char.startswith(self._katotth[slots], filters.katotth.encode())
        return ok

    def _match_all(self, filters: Filters) -> np.ndarray:
        """Which slots pass the filters, as a mask over every slot."""
        return self._match(np.arange(len(self.records)), filters)
