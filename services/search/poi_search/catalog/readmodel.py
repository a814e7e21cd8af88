"""The in-memory read model: the latest version of every point and status, from events."""

import heapq
import math
from dataclasses import dataclass, field
from uuid import UUID

from poi_shared.contracts import Facility, OpenState, PointState, StatusState, Visibility

EARTH_RADIUS_M = 6_371_008.8
COARSE_DECIMALS = 2  # about 1 km


@dataclass(frozen=True, slots=True)
class Hit:
    """A point found by a query, with its distance and status."""

    point: PointState
    lat: float
    lon: float
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
        facilities: frozenset[Facility] = frozenset(),
    ) -> list[Hit]:
        """The public points nearest to (lat, lon) within radius_m, nearest first."""
        candidates = []
        for point in self.points.values():
            if point.retired or point.visibility == Visibility.hidden:
                continue
            if facilities and not facilities.issubset(point.facilities):
                continue
            status = self.statuses.get(point.id)
            if state is not None and (status.state if status else OpenState.unknown) != state:
                continue
            p_lat, p_lon = public_location(point)
            distance = haversine_m(lat, lon, p_lat, p_lon)
            if distance <= radius_m:
                candidates.append(Hit(point, p_lat, p_lon, distance, status))
        return heapq.nsmallest(limit, candidates, key=lambda h: h.distance_m)


def public_location(point: PointState) -> tuple[float, float]:
    """Where the public may see the point: coarse points are rounded to about a kilometre."""
    if point.visibility == Visibility.coarse:
        return round(point.lat, COARSE_DECIMALS), round(point.lon, COARSE_DECIMALS)
    return point.lat, point.lon


def haversine_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance in metres."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(math.sqrt(a))
