"""The query strings of nearest, map box and text search, and the answers they get (documented in OpenAPI)."""

import re
from dataclasses import dataclass, field
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from poi_search.catalog.readmodel import Box
from poi_shared.contracts import KATOTTH_PREFIX_PATTERN, OpenState, PointCategory, Service
from poi_shared.models import INT64_MAX, Line

NUMBER = r"\s*-?\d+(?:\.\d+)?\s*"
BBOX_PATTERN = rf"^{NUMBER}(?:,{NUMBER}){{3}}$"


class Query(BaseModel):
    """A query string: every parameter known, numbers finite; values arrive as text and are converted."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class FilterQuery(Query):
    """Filters every point query takes."""

    open_now: bool = Field(
        default=False, description="Only points open now: state open, confirmed within the configured age (3 h)."
    )
    state: list[OpenState] = Field(default_factory=list, description="Only points in one of these states.")
    service: list[Service] = Field(default_factory=list, description="Only points offering every one of these.")
    category: list[PointCategory] = Field(default_factory=list, description="Only points of one of these categories.")
    free_places: bool = Field(
        default=False, description="Only points with room: fewer people than places, or no count and not full."
    )
    wheelchair: bool = Field(default=False, description="Only wheelchair-accessible points.")
    mother_child: bool = Field(default=False, description="Only points with a mother-and-child room.")
    power_on: bool = Field(default=False, description="Only points with power now: grid, generator or battery.")


Latitude = Annotated[float, Field(ge=-90, le=90, description="WGS84 latitude.")]
Longitude = Annotated[float, Field(ge=-180, le=180, description="WGS84 longitude.")]
Limit = Annotated[int, Field(ge=1, le=INT64_MAX, description="How many points at most (capped by the service).")]


class NearestQuery(FilterQuery):
    """Points nearest to a place."""

    lat: Latitude
    lon: Longitude
    limit: Limit = 10
    radius_km: float = Field(default=25.0, gt=0, description="How far to look, in km (capped by the service).")


class BoxQuery(FilterQuery):
    """Points in a map viewport."""

    bbox: str = Field(
        pattern=BBOX_PATTERN,
        description="west,south,east,north in degrees (lon,lat,lon,lat; boxes across the antimeridian are refused).",
        examples=["30.2,50.3,30.8,50.6"],
    )
    limit: Limit = 500

    @field_validator("bbox")
    @classmethod
    def ordered_box(cls, value: str) -> str:
        """Each bound in range, west not east of east, south not north of north."""
        parse_box(value)
        return value

    def box(self) -> Box:
        """The box the query names."""
        return parse_box(self.bbox)


class TextQuery(FilterQuery):
    """Points by name, address or settlement, in Ukrainian or Latin script."""

    q: Line = Field(min_length=1, max_length=200, description="Words to find, e.g. Київ Хрещатик or Kyiv Khreshchatyk.")
    lat: Latitude | None = Field(default=None, description="With lon: rank nearer points higher, give distances.")
    lon: Longitude | None = Field(default=None, description="With lat.")
    katotth: str | None = Field(
        default=None, pattern=KATOTTH_PREFIX_PATTERN, description="Only points whose KATOTTH code starts so (UA80…)."
    )
    limit: Limit = 10


@dataclass(frozen=True, slots=True)
class NearestParams:
    """A nearest query string in its common plain form, read without pydantic (NearestQuery still documents it)."""

    lat: float
    lon: float
    limit: int = 10
    radius_km: float = 25.0
    open_now: bool = False
    state: list[OpenState] = field(default_factory=list)
    service: list[Service] = field(default_factory=list)
    category: list[PointCategory] = field(default_factory=list)
    free_places: bool = False
    wheelchair: bool = False
    mother_child: bool = False
    power_on: bool = False


PLAIN_NUMBER = re.compile(rb"-?\d{1,12}(?:\.\d{1,17})?")
PLAIN_COUNT = re.compile(rb"\d{1,9}")
PLAIN_BOOLS = {b"true": True, b"false": False, b"1": True, b"0": False}
PLAIN_LISTS: dict[bytes, dict[bytes, Any]] = {
    b"state": {s.value.encode(): s for s in OpenState},
    b"service": {s.value.encode(): s for s in Service},
    b"category": {c.value.encode(): c for c in PointCategory},
}
PLAIN_FLAGS = (b"open_now", b"free_places", b"wheelchair", b"mother_child", b"power_on")
PLAIN_SCALARS = frozenset((b"lat", b"lon", b"limit", b"radius_km", *PLAIN_FLAGS))


def read_nearest(raw: bytes) -> NearestParams | None:
    """The query string as NearestParams when it is plain and valid (caps aside); None for anything else.

    Plain: no percent-encoding, every parameter known and given once (lists may repeat), numbers as digits, booleans
    as true/false/1/0, enum values as spelled. Everything this refuses goes to NearestQuery, which accepts more
    spellings and answers what is wrong; whatever this accepts, NearestQuery reads the same way.
    """
    if b"%" in raw or b"+" in raw:
        return None
    scalars: dict[bytes, bytes] = {}
    lists: dict[bytes, list[Any]] = {}
    for pair in raw.split(b"&"):
        if not pair:
            continue
        name, equals, value = pair.partition(b"=")
        if not equals:
            return None
        members = PLAIN_LISTS.get(name)
        if members is not None:
            member = members.get(value)
            if member is None:
                return None
            lists.setdefault(name, []).append(member)
        elif name in PLAIN_SCALARS and name not in scalars:
            scalars[name] = value
        else:
            return None
    lat, lon = _plain_number(scalars.pop(b"lat", None)), _plain_number(scalars.pop(b"lon", None))
    if lat is None or lon is None or not (-90 <= lat <= 90 and -180 <= lon <= 180):
        return None
    limit, radius_km = scalars.pop(b"limit", b"10"), _plain_number(scalars.pop(b"radius_km", b"25"))
    if not PLAIN_COUNT.fullmatch(limit) or int(limit) < 1 or radius_km is None or radius_km <= 0:
        return None
    flags: dict[bytes, bool] = {}
    for name, value in scalars.items():  # only flags are left
        flag = PLAIN_BOOLS.get(value)
        if flag is None:
            return None
        flags[name] = flag
    return NearestParams(
        lat,
        lon,
        int(limit),
        radius_km,
        open_now=flags.get(b"open_now", False),
        state=lists.get(b"state", []),
        service=lists.get(b"service", []),
        category=lists.get(b"category", []),
        free_places=flags.get(b"free_places", False),
        wheelchair=flags.get(b"wheelchair", False),
        mother_child=flags.get(b"mother_child", False),
        power_on=flags.get(b"power_on", False),
    )


def _plain_number(value: bytes | None) -> float | None:
    """Digits with an optional sign and fraction as a float; None for anything else."""
    return float(value) if value is not None and PLAIN_NUMBER.fullmatch(value) else None


def parse_box(value: str) -> Box:
    """west,south,east,north as a Box; ValueError naming what is wrong."""
    if not re.fullmatch(BBOX_PATTERN, value):
        raise ValueError("must be four numbers: west,south,east,north")
    west, south, east, north = (float(v) for v in value.split(","))
    if not (-180 <= west <= 180 and -180 <= east <= 180 and -90 <= south <= 90 and -90 <= north <= 90):
        raise ValueError("longitudes must be within -180..180 and latitudes within -90..90")
    if south > north:
        raise ValueError("the box is upside down: south must not be north of north")
    if west > east:
        raise ValueError("west must not be east of east (boxes across the antimeridian are not supported)")
    return Box(west, south, east, north)


class StatusView(BaseModel):
    """A point's live status beside it."""

    state: OpenState
    reported_at: str | None = Field(description="When a person last confirmed it, ISO 8601.")
    age_s: int | None = Field(description="Seconds since then.")
    occupancy: int | None
    power: str | None
    fuel_hours: float | None
    low_fuel: bool
    internet: str | None
    services: dict[str, bool] = Field(description="Whether each service works right now.")
    note: str | None


class Links(BaseModel):
    """Directions to the point."""

    geo: str = Field(description="A geo: URI (RFC 5870), which phones open in their map app.")
    osm: str = Field(description="OpenStreetMap.")
    google: str = Field(description="Google Maps.")


class Item(BaseModel):
    """A point as the public sees it: coarse points at their rounded position, with the settlement as address."""

    id: str
    code: str
    name_uk: str
    name_en: str | None
    category: PointCategory
    host_type: str
    lat: float
    lon: float
    exact_location: bool
    address_uk: str
    address_en: str | None
    settlement: str
    katotth: str
    operator_org: str | None
    public_phone: str | None
    schedule: dict[str, object]
    services: list[Service]
    capacity: int
    free_places: int | None = Field(description="Capacity minus occupancy; 0 when full; null when unknown.")
    status: StatusView
    links: Links
    distance_m: int | None = Field(default=None, description="Metres from the given place, when there is one.")


class TextItem(Item):
    """A point found by text."""

    score: float = Field(ge=0, le=100, description="How well it matches the words, 0..100.")


DATA_AGE = (
    "Seconds since this replica last confirmed it held every event (the X-Data-Age header too, in whole seconds). "
    "About a second normally; it grows while the broker is away."
)


class NearestAnswer(BaseModel):
    """Points nearest first."""

    items: list[Item]
    count: int
    data_age_s: float = Field(description=DATA_AGE)


class BoxAnswer(BaseModel):
    """Points in the box, nearest its centre first."""

    items: list[Item]
    count: int
    matched: int = Field(description="How many points in the box match; more than count when the limit cut.")
    data_age_s: float = Field(description=DATA_AGE)


class TextAnswer(BaseModel):
    """Points best matching the words first (nearer first among similar ones)."""

    items: list[TextItem]
    count: int
    data_age_s: float = Field(description=DATA_AGE)
