"""Where each oblast lies: a point must be within the margin of its KATOTTH oblast's extent.

The extents ship with the registry (oblast_extents.json, generated from GeoNames by `poi oblast-extents`), so the
check needs no network or geodata library at run time.
"""

import json
import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

EXTENTS_FILE = Path(__file__).with_name("oblast_extents.json")
KM_PER_DEGREE = 111.32


@dataclass(frozen=True, slots=True)
class Oblast:
    """An oblast-level unit: its code (UA + 2 digits), names, and convex extent in local kilometres."""

    code: str
    name_uk: str
    name_en: str
    cos_lat: float  # the local scale of a degree of longitude
    hull_km: tuple[tuple[float, float], ...]  # counter-clockwise
    box_km: tuple[float, float, float, float]  # min x, min y, max x, max y

    def km(self, lat: float, lon: float) -> tuple[float, float]:
        """A position in this oblast's local plane."""
        return lon * KM_PER_DEGREE * self.cos_lat, lat * KM_PER_DEGREE

    def distance_km(self, lat: float, lon: float) -> float:
        """How far the position lies outside the extent; 0 inside."""
        x, y = self.km(lat, lon)
        if not (self.box_km[0] <= x <= self.box_km[2] and self.box_km[1] <= y <= self.box_km[3]):
            return _distance_to_hull(self.hull_km, x, y)
        hull = self.hull_km
        inside = all(
            (b[0] - a[0]) * (y - a[1]) - (b[1] - a[1]) * (x - a[0]) >= 0
            for a, b in zip(hull, hull[1:] + hull[:1], strict=True)
        )
        return 0.0 if inside else _distance_to_hull(hull, x, y)


@dataclass(frozen=True, slots=True)
class Extents:
    """Every oblast's extent and the margin a point may lie beyond it."""

    margin_km: float
    oblasts: dict[str, Oblast]

    def misplaced(self, *, lat: float, lon: float, katotth: str) -> str | None:
        """Why the position cannot belong to the code's oblast, or None when it can."""
        oblast = self.oblasts.get(katotth[:4])
        if oblast is None:
            return f"{katotth[:4]} is not a KATOTTH oblast code"
        distance = oblast.distance_km(lat, lon)
        if distance <= self.margin_km:
            return None
        return (
            f"({lat}, {lon}) lies {distance:.0f} km outside {oblast.name_en} ({oblast.code}), "
            f"the oblast of KATOTTH code {katotth}"
        )


def _distance_to_hull(hull: tuple[tuple[float, float], ...], x: float, y: float) -> float:
    """Distance from a position outside the hull to its nearest edge."""
    if len(hull) == 1:
        return math.hypot(x - hull[0][0], y - hull[0][1])
    return min(_distance_to_segment(a, b, x, y) for a, b in zip(hull, hull[1:] + hull[:1], strict=True))


def _distance_to_segment(a: tuple[float, float], b: tuple[float, float], x: float, y: float) -> float:
    dx, dy = b[0] - a[0], b[1] - a[1]
    length2 = dx * dx + dy * dy
    t = 0.0 if length2 == 0 else max(0.0, min(1.0, ((x - a[0]) * dx + (y - a[1]) * dy) / length2))
    return math.hypot(x - (a[0] + t * dx), y - (a[1] + t * dy))


def parse_extents(document: dict) -> Extents:
    """The extents from the file's JSON document."""
    oblasts = {}
    for code, body in document["oblasts"].items():
        hull_degrees = [(float(lon), float(lat)) for lon, lat in body["hull"]]
        cos_lat = math.cos(math.radians(sum(lat for _, lat in hull_degrees) / len(hull_degrees)))
        hull = tuple((lon * KM_PER_DEGREE * cos_lat, lat * KM_PER_DEGREE) for lon, lat in hull_degrees)
        xs, ys = [x for x, _ in hull], [y for _, y in hull]
        box = (min(xs), min(ys), max(xs), max(ys))
        oblasts[code] = Oblast(code, body["name_uk"], body["name_en"], cos_lat, hull, box)
    return Extents(float(document["margin_km"]), oblasts)


@lru_cache(maxsize=1)
def extents() -> Extents:
    """The extents shipped with the registry, read once."""
    return parse_extents(json.loads(EXTENTS_FILE.read_text(encoding="utf-8")))
