"""The in-memory read model: the latest version of every point and status, from events."""

import heapq
import math
from dataclasses import dataclass, field
from uuid import UUID

from poi_shared.contracts import OpenState, PointState, Service, StatusState
from poi_shared.visibility import PublicPlace, public_place

EARTH_RADIUS_M = 6_371_008.8


@dataclass(frozen=True, slots=True)
class Hit:
    """A point found by a query, with its distance and status."""

    point: PointState
    place: PublicPlace
    distance_m: float
    status: StatusState | None


@dataclass
class ReadModel:
    """Points and statuses keyed by point id; events older than what is held are skipped."""

    points: dict[UUID, PointState] = field(default_factory=dict)
    statuses: dict[UUID, StatusState] = field(default_factory=dict)

    def apply_point(self, point: PointState) -> bool:
        """Take a point event unless it is a repeat or out of order."""
        held = self.points.get(point.id)
        if held is not None and held.version >= point.version:
            return False
        self.points[point.id] = point
        return True

    def apply_status(self, status: StatusState) -> bool:
        """Take a status event unless it is a repeat or out of order."""
        held = self.statuses.get(status.point_id)
        if held is not None and held.version >= status.version:
            return False
        self.statuses[status.point_id] = status
        return True

    def nearest(
        self,
        lat: float,
        lon: float,
        *,
        limit: int,
        radius_m: float,
        state: OpenState | None = None,
        services: frozenset[Service] = frozenset(),
    ) -> list[Hit]:
        """The public points nearest to (lat, lon) within radius_m, nearest first."""
        candidates = []
        for point in self.points.values():
            place = public_place(point)
            if point.retired or place is None:
                continue
            if services and not services.issubset(point.services):
                continue
            status = self.statuses.get(point.id)
            if state is not None and (status.state if status else OpenState.unknown) != state:
                continue
            distance = haversine_m(lat, lon, place.lat, place.lon)
            if distance <= radius_m:
                candidates.append(Hit(point, place, distance, status))
        return heapq.nsmallest(limit, candidates, key=lambda h: h.distance_m)


def haversine_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance in metres."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(math.sqrt(a))
