"""A spatial index for nearest-point queries: a latitude/longitude grid over the points' bounding box, in numpy.

The visible points are sorted by grid cell (row-major), with the offset of each cell's first point, so the points
of a block of cells are one slice per row. A query searches a block around its cell, computes exact unit-sphere
chord lengths (which order exactly as great-circle distances) and grows the block until the nearest matches it
found are closer than anything outside it could be. (scipy's k-d tree answers as fast, but importing scipy.spatial
costs a replica 40 MB.)
"""

import math
from collections.abc import Callable

import numpy as np

EARTH_RADIUS_M = 6_371_008.8
FINEST_CELL_DEG = 0.1  # about 11 by 7 km in Ukraine: a few points a cell in the country, hundreds in Kyiv
CANDIDATES_PER_RESULT = 3  # a block with fewer points than this many per wanted result is grown before searching
MAX_CELLS = 1 << 18  # coarser cells when the points spread wider (a point in Berlin, in Chile…)

Matcher = Callable[[np.ndarray], np.ndarray]
"""Which of the given slots pass the query's filters."""


def squared_chords(xyz: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Squared chord lengths from unit vectors to target: 2 - 2 cos(angle), one matrix product for them all.

    The one formula for every candidate, indexed or not: two points at one place get exactly the same distance.
    """
    return 2.0 - 2.0 * (xyz @ target)


class GridIndex:
    """Slots sorted by grid cell over their bounding box; rebuilt, never updated in place."""

    def __init__(self, slots: np.ndarray, lat: np.ndarray, lon: np.ndarray, xyz: np.ndarray) -> None:
        """Index the slots whose public positions are lat, lon and xyz (arrays aligned with slots)."""
        self.size = len(slots)
        self.south, self.west = float(lat.min()), float(lon.min())
        north, east = float(lat.max()), float(lon.max())
        cell = FINEST_CELL_DEG
        while ((north - self.south) / cell + 1) * ((east - self.west) / cell + 1) > MAX_CELLS:
            cell *= 2
        self.cell = cell
        self.rows = int((north - self.south) / cell) + 1
        self.cols = int((east - self.west) / cell) + 1
        rows = np.clip(((lat - self.south) / cell).astype(np.int64), 0, self.rows - 1)
        cols = np.clip(((lon - self.west) / cell).astype(np.int64), 0, self.cols - 1)
        cells = rows * self.cols + cols
        order = np.argsort(cells, kind="stable")
        self.slots = slots[order]
        self.xyz = xyz[order]  # a copy in grid order: a block's points are contiguous in memory too
        counts = np.bincount(cells, minlength=self.rows * self.cols)
        # Plain lists: a query reads a few dozen of these numbers, faster from lists than from numpy.
        self._offsets: list[int] = np.concatenate(([0], np.cumsum(counts))).tolist()
        # Points in the cells above and left of each corner (summed-area table): any block's count in 4 reads.
        table = np.zeros((self.rows + 1, self.cols + 1), dtype=np.int64)
        table[1:, 1:] = counts.reshape(self.rows, self.cols).cumsum(0).cumsum(1)
        self._counts: list[list[int]] = table.tolist()

    def nearest(
        self, lat: float, lon: float, target: np.ndarray, *, limit: int, bound: float, matches: Matcher
    ) -> tuple[np.ndarray, np.ndarray]:
        """(slots, chords) of up to limit matching points within chord length bound of target, nearest first."""
        row = min(max(math.floor((lat - self.south) / self.cell), 0), self.rows - 1)
        col = min(max(math.floor((lon - self.west) / self.cell), 0), self.cols - 1)
        squared_bound = bound * bound
        wanted = CANDIDATES_PER_RESULT * limit
        reach = 1
        while True:
            top, bottom = max(0, row - reach), min(self.rows - 1, row + reach)
            left, right = max(0, col - reach), min(self.cols - 1, col + reach)
            # Anything outside the block is at least this far.
            beyond = self._beyond(lat, lon, top, bottom, left, right)
            held = self._count(top, bottom, left, right)
            if held < wanted and beyond < bound:
                # Too few points here to hold the answer: look wider before computing, by the density seen so far.
                side = (2 * reach + 1) * math.sqrt(wanted / max(held, 1))
                reach = max(reach * 2 + 1, math.ceil(side / 2))
                continue
            slots, xyz = self._block(top, bottom, left, right)
            squared = squared_chords(xyz, target)
            ok = squared <= squared_bound
            ok &= matches(slots)
            slots, squared = slots[ok], squared[ok]
            # Found enough closer than anything outside could be, or every match within bound.
            if beyond >= bound or np.count_nonzero(squared <= beyond * beyond) >= limit:
                # Equally near points by slot: the answer does not depend on the order the block was read in.
                order = np.lexsort((slots, squared))[:limit]
                return slots[order], np.sqrt(np.maximum(squared[order], 0.0))
            reach = reach * 2 + 1

    def _count(self, top: int, bottom: int, left: int, right: int) -> int:
        """Points in the block of cells."""
        table = self._counts
        return table[bottom + 1][right + 1] - table[top][right + 1] - table[bottom + 1][left] + table[top][left]

    def _block(self, top: int, bottom: int, left: int, right: int) -> tuple[np.ndarray, np.ndarray]:
        """(slots, positions) of the points in the block of cells: one slice per row."""
        offsets, cols = self._offsets, self.cols
        spans = [(offsets[r * cols + left], offsets[r * cols + right + 1]) for r in range(top, bottom + 1)]
        spans = [(start, end) for start, end in spans if end > start]
        if len(spans) == 1:
            start, end = spans[0]
            return self.slots[start:end], self.xyz[start:end]
        if not spans:
            return self.slots[:0], self.xyz[:0]
        return (
            np.concatenate([self.slots[start:end] for start, end in spans]),
            np.concatenate([self.xyz[start:end] for start, end in spans]),
        )

    def _beyond(self, lat: float, lon: float, top: int, bottom: int, left: int, right: int) -> float:
        """The least chord length from (lat, lon) to any indexed point outside the block of cells.

        Each side of the block that is not the grid's own edge bounds it: the points south of the block are at
        least the latitude difference away, those west of it at least the distance to that meridian, which is
        asin(cos(lat) sin(dlon)) and grows with dlon up to a quarter turn (beyond that no bound is claimed).
        """
        degrees = math.inf  # the nearest edge, in degrees of arc
        if top > 0:
            degrees = lat - (self.south + top * self.cell)
        if bottom < self.rows - 1:
            degrees = min(degrees, self.south + (bottom + 1) * self.cell - lat)
        sides = []
        if left > 0:
            sides.append(lon - (self.west + left * self.cell))
        if right < self.cols - 1:
            sides.append(self.west + (right + 1) * self.cell - lon)
        if sides:
            across = min(sides)
            if max(sides) >= 90:
                across = 0.0  # no bound past a quarter turn
            elif across > 0:
                across = math.degrees(math.asin(math.cos(math.radians(lat)) * math.sin(math.radians(across))))
            degrees = min(degrees, across)
        if degrees == math.inf:
            return math.inf
        return 2 * math.sin(math.radians(min(max(degrees, 0.0), 180.0)) / 2)
