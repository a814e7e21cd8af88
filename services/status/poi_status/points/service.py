"""The directory: each replica's in-memory view of every known point's area, category and public visibility.

Public reads and the live feed ask it whether a point may be shown and where it is, without a query per point. It
follows PostgreSQL's known_points by the id of the transaction that wrote each row (see data.known_points_since),
so it is at most one refresh behind; a point it has not seen yet is looked up at once.
"""

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import asyncpg

from poi_shared import db
from poi_shared.contracts import PointCategory, Visibility
from poi_status import data

REFRESH_S = 1.0


@dataclass(frozen=True, slots=True)
class KnownPoint:
    """What status knows of a point."""

    point_id: UUID
    version: int
    katotth: str
    category: PointCategory
    public: bool  # neither hidden nor retired: the public may see its status


def known_point(row: Mapping[str, Any]) -> KnownPoint:
    """A known point from its row."""
    return KnownPoint(
        point_id=row["id"],
        version=row["version"],
        katotth=row["katotth"],
        category=PointCategory(row["category"]),
        public=row["visibility"] != Visibility.hidden and not row["retired"],
    )


class Directory:
    """Known points by id, refreshed from PostgreSQL."""

    def __init__(self) -> None:
        self.points: dict[UUID, KnownPoint] = {}
        self._horizon: int | None = None

    async def refresh(self, pool: asyncpg.Pool) -> int:
        """Take in every point written since the last refresh (all of them the first time); returns how many."""
        async with db.connection(pool) as conn:
            rows, self._horizon = await data.known_points_since(conn, horizon=self._horizon)
        for row in rows:
            self._take(known_point(row))
        return len(rows)

    async def lookup(self, pool: asyncpg.Pool, point_ids: Iterable[UUID]) -> dict[UUID, KnownPoint]:
        """The known points among these ids; those not seen yet are read from PostgreSQL."""
        wanted = list(dict.fromkeys(point_ids))
        missing = [p for p in wanted if p not in self.points]
        if missing:
            async with db.connection(pool) as conn:
                for row in await data.known_points_by_id(conn, missing):
                    self._take(known_point(row))
        return {p: self.points[p] for p in wanted if p in self.points}

    def _take(self, point: KnownPoint) -> None:
        """Hold the point unless a newer version of it is held (a lookup may overtake a refresh)."""
        held = self.points.get(point.point_id)
        if held is None or held.version <= point.version:
            self.points[point.point_id] = point

    async def public(self, pool: asyncpg.Pool, point_ids: Iterable[UUID]) -> list[UUID]:
        """Those of these points the public may see, in the order given."""
        known = await self.lookup(pool, point_ids)
        return [p for p, point in known.items() if point.public]
