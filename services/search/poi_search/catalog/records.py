"""What the read model keeps of each point: pre-serialised JSON pieces of its public view and its status, and bits.

A query answer is assembled from these pieces without serialising anything but the distance and the status's age,
which change with every request. Hidden and retired points keep no pieces at all (`point_json` is None).
"""

import math
import zlib
from dataclasses import dataclass

import orjson

from poi_shared.contracts import OpenState, PointCategory, PointState, PowerSource, Service, StatusState
from poi_shared.visibility import public_place

# One bit per service, per category and per state, plus derived facts: a slot's flags word answers every filter
# with one AND. Bits are assigned in the contract's order, so adding a service at the end moves none.
SERVICE_BITS = {service: 1 << n for n, service in enumerate(Service)}
CATEGORY_BITS = {category: 1 << (20 + n) for n, category in enumerate(PointCategory)}
STATE_BITS = {state: 1 << (24 + n) for n, state in enumerate(OpenState)}
FREE = 1 << 30  # has free places (see free_places)
POWER_ON = 1 << 31  # powered by the grid, a generator or a battery
VISIBLE = 1 << 32  # the public may see it: not hidden, not retired
INDEXED = 1 << 33  # the spatial index holds its current position
POINT_BITS = VISIBLE | sum(SERVICE_BITS.values()) | sum(CATEGORY_BITS.values())
STATUS_BITS = sum(STATE_BITS.values()) | POWER_ON

MAX_SHARED_TAILS = 4096
_TAILS: dict[bytes, bytes] = {}
UNKNOWN_STATUS = b'"state":"unknown","reported_at":null,"age_s":'
UNKNOWN_STATUS_TAIL = (
    b',"occupancy":null,"power":null,"fuel_hours":null,"low_fuel":false,"internet":null,"services":{},"note":null}'
)


@dataclass(frozen=True, slots=True)
class PublicPoint:
    """A visible point as shown: its position, capacity, and the lengths of its JSON pieces in its record."""

    lat: float
    lon: float
    capacity: int
    json_len: int  # of "id":…,…,"capacity":120, which opens the record's head
    links_len: int  # of ,"links":{…}, which ends the record's tail


@dataclass(frozen=True, slots=True)
class Shown:
    """What the public may see of a point: its place, its JSON pieces, and the texts it can be found by."""

    point: PublicPoint
    json: bytes
    links: bytes
    texts: tuple[str, ...]


@dataclass(slots=True)
class Record:
    """One point as a replica holds it (a status may arrive before its point)."""

    id: str
    point_version: int = 0
    status_version: int = 0
    point: PublicPoint | None = None  # None while unknown, hidden or retired
    status_head: bytes = UNKNOWN_STATUS  # "state":…,"age_s": (the age follows)
    status_tail: bytes = UNKNOWN_STATUS_TAIL  # ,"occupancy":…} (closes the status object)
    reported_at: float = math.nan  # epoch seconds of the last confirmation; NaN without a status
    state: OpenState = OpenState.unknown
    occupancy: int | None = None
    # An answer's item is head + the status's age + tail + extra fields + "}": composed once per change.
    head: bytes = b""  # {"id":…,"capacity":…,"free_places":…,"status":{"state":…,"age_s":
    tail: bytes = b""  # ,"occupancy":…},"links":{…}
    tag: int = 0  # checksum of the pieces, for ETags

    def free_places(self) -> int | None:
        """Capacity minus occupancy; 0 when full; None when nobody knows."""
        if self.point is None:
            return None
        if self.occupancy is not None:
            return max(0, self.point.capacity - self.occupancy)
        return 0 if self.state == OpenState.full else None

    def has_free_places(self) -> bool:
        """Room by the last count, or no count and not reported full."""
        free = self.free_places()
        return free is None or free > 0

    def free_json(self) -> bytes:
        ""","free_places":N,"status":{ — the piece between the point's fields and its status."""
        free = self.free_places()
        return b',"free_places":' + (b"null" if free is None else str(free).encode()) + b',"status":{'

    def compose(self, shown: Shown | None = None) -> None:
        """Rebuild head, tail and checksum: from a point event's pieces, or (a status event) from those held."""
        if shown is not None:
            self.point, json, links = shown.point, shown.json, shown.links
        elif self.point is not None:
            json = self.head[1 : 1 + self.point.json_len]
            links = self.tail[len(self.tail) - self.point.links_len :]
        if self.point is None:
            self.head = self.tail = b""
        else:
            self.head = b"{" + json + self.free_json() + self.status_head
            self.tail = self.status_tail + links
        self.tag = zlib.crc32(self.tail, zlib.crc32(self.head, zlib.crc32(self.status_head)))

    def item(self, age: bytes, extra: bytes) -> bytes:
        """The JSON object of a visible point: the status's age and extra fields (distance, score) filled in."""
        return b"".join((self.head, age, self.tail, extra, b"}"))

    def age(self, now: float) -> bytes:
        """Whole seconds since the status was confirmed, as JSON."""
        if math.isnan(self.reported_at):
            return b"null"
        return str(max(0, int(now - self.reported_at))).encode()


def public_point(point: PointState, point_id: str) -> Shown | None:
    """What the public may see of the point, through the shared visibility policy; None for none of it.

    A coarse point is shown at its rounded place and searched by its settlement, never its address.
    """
    place = public_place(point)
    if place is None or point.retired:
        return None
    fields = {  # enums serialise as their values
        "id": point_id,
        "code": point.code,
        "name_uk": point.name_uk,
        "name_en": point.name_en,
        "category": point.category,
        "host_type": point.host_type,
        "lat": place.lat,
        "lon": place.lon,
        "exact_location": place.exact,
        "address_uk": place.address_uk,
        "address_en": place.address_en,
        "settlement": point.settlement,
        "katotth": point.katotth,
        "operator_org": point.operator_org,
        "public_phone": point.public_phone,
        "schedule": orjson.Fragment(point.schedule.model_dump_json()),
        "services": point.services,
        "capacity": point.capacity,
    }
    lat, lon = repr(place.lat), repr(place.lon)
    links = {
        "geo": f"geo:{lat},{lon}",
        "osm": f"https://www.openstreetmap.org/?mlat={lat}&mlon={lon}#map=17/{lat}/{lon}",
        "google": f"https://www.google.com/maps/search/?api=1&query={lat}%2C{lon}",
    }
    texts = (point.name_uk, point.name_en or "", place.address_uk, place.address_en or "", point.settlement, point.code)
    json, links_json = orjson.dumps(fields)[1:-1], b',"links":' + orjson.dumps(links)
    public = PublicPoint(place.lat, place.lon, point.capacity, json_len=len(json), links_len=len(links_json))
    return Shown(public, json, links_json, texts)


def point_bits(point: PointState) -> int:
    """The flag bits a point event decides (VISIBLE is set by the caller for visible points)."""
    bits = CATEGORY_BITS[point.category]
    for service in point.services:
        bits |= SERVICE_BITS[service]
    return bits


def status_pieces(status: StatusState) -> tuple[bytes, bytes]:
    """The status object's JSON around its age: ("state":…,"age_s":, ,"occupancy":…})."""
    head = orjson.dumps({"state": status.state, "reported_at": status.reported_at})[1:-1]
    tail = orjson.dumps(
        {
            "occupancy": status.occupancy,
            "power": status.power,
            "fuel_hours": status.fuel_hours,
            "low_fuel": status.low_fuel,
            "internet": status.internet,
            "services": {service.value: s.available for service, s in status.services.items()},
            "note": status.note,
        }
    )[1:]
    tail = b"," + tail
    # Most statuses share their tail (no counts, no power reported): keep one copy of each.
    if len(_TAILS) >= MAX_SHARED_TAILS:
        _TAILS.clear()
    return head + b',"age_s":', _TAILS.setdefault(tail, tail)


def status_bits(status: StatusState) -> int:
    """The flag bits a status event decides (FREE depends on the point too and is set by the caller)."""
    bits = STATE_BITS[status.state]
    if status.power in (PowerSource.grid, PowerSource.generator, PowerSource.battery):
        bits |= POWER_ON
    return bits
