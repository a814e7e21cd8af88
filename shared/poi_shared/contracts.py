"""The event contract: every stream, subject and event type, with the data each carries.

Producers and consumers both import these models, so the two sides cannot drift.
"""

import builtins
from dataclasses import dataclass
from datetime import datetime, time
from enum import StrEnum
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from poi_shared.models import Text

KATOTTH_PATTERN = r"^UA\d{17}$"
# A coordinator's scope: a code cut at a level boundary, oblast (UA+2 digits) or below (4, 7, 10 or 17 digits).
KATOTTH_SCOPE_PATTERN = r"^UA\d{2}(?:\d{2}(?:\d{3}(?:\d{3}(?:\d{7})?)?)?)?$"
# Any prefix of a code, for filters: "UA", "UA8", "UA80", ...
KATOTTH_PREFIX_PATTERN = r"^UA\d{0,17}$"
POINT_CODE_PATTERN = r"^[A-Z0-9][A-Z0-9-]{2,31}$"
E164_PATTERN = r"^\+[1-9]\d{6,14}$"


def katotth_levels(code: str) -> dict[str, str]:
    """The oblast, raion and hromada prefixes of a KATOTTH code (cities with special status have zeros below)."""
    return {"oblast": code[:4], "raion": code[:6], "hromada": code[:9]}


class PointCategory(StrEnum):
    """The three categories of the official map."""

    state = "state"
    business = "business"
    essential = "essential"


class HostType(StrEnum):
    """Who hosts the point."""

    administration = "administration"
    emergency_service = "emergency_service"
    police = "police"
    school = "school"
    hospital = "hospital"
    library = "library"
    business = "business"
    other = "other"


class Visibility(StrEnum):
    """Graded visibility for security: hidden points never reach the public, coarse ones only approximately."""

    public = "public"
    coarse = "coarse"
    hidden = "hidden"


class Service(StrEnum):
    """What a point offers, from a fixed catalogue (labels in SERVICE_LABELS)."""

    heat = "heat"
    water = "water"
    electricity = "electricity"
    charging = "charging"
    internet = "internet"
    mobile_connection = "mobile_connection"
    starlink = "starlink"
    generator = "generator"
    rest = "rest"
    sleeping_places = "sleeping_places"
    toilets = "toilets"
    first_aid = "first_aid"
    mother_child = "mother_child"
    hot_drinks = "hot_drinks"
    food = "food"
    wheelchair_accessible = "wheelchair_accessible"
    pets = "pets"


SERVICE_LABELS: dict[Service, tuple[str, str]] = {
    Service.heat: ("Тепло", "Heat"),
    Service.water: ("Вода", "Water"),
    Service.electricity: ("Електрика", "Electricity"),
    Service.charging: ("Зарядка пристроїв", "Device charging"),
    Service.internet: ("Інтернет", "Internet"),
    Service.mobile_connection: ("Мобільний зв'язок", "Mobile connection"),
    Service.starlink: ("Starlink", "Starlink"),
    Service.generator: ("Генератор", "Generator"),
    Service.rest: ("Місця для відпочинку", "Places to rest"),
    Service.sleeping_places: ("Місця для сну", "Sleeping places"),
    Service.toilets: ("Туалети", "Toilets"),
    Service.first_aid: ("Аптечка, перша допомога", "First aid"),
    Service.mother_child: ("Кімната матері і дитини", "Mother and child room"),
    Service.hot_drinks: ("Гарячі напої", "Hot drinks"),
    Service.food: ("Їжа", "Food"),
    Service.wheelchair_accessible: ("Доступно для візків", "Wheelchair accessible"),
    Service.pets: ("Можна з тваринами", "Pets welcome"),
}
"""Ukrainian and English label of every service."""


class ScheduleKind(StrEnum):
    """When a point is meant to be open."""

    always = "always"  # 24/7
    weekly = "weekly"  # by its opening hours
    on_blackout = "on_blackout"  # when a coordinator activates its area


class Weekday(StrEnum):
    """Days of the week, Monday first."""

    mon = "mon"
    tue = "tue"
    wed = "wed"
    thu = "thu"
    fri = "fri"
    sat = "sat"
    sun = "sun"


class OpeningHours(BaseModel):
    """Hours on some days, in Kyiv local time; closes before opens means past midnight."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    days: list[Weekday] = Field(min_length=1, max_length=7)
    opens: time
    closes: time


class Schedule(BaseModel):
    """When the point is meant to be open, plus a free-text note."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: ScheduleKind = ScheduleKind.always
    hours: list[OpeningHours] = Field(default_factory=list, max_length=14, description="Only for kind weekly.")
    note: Text | None = Field(default=None, max_length=300)


class PointState(BaseModel):
    """The full public state of a point, carried by every point event (private contacts stay in the registry)."""

    model_config = ConfigDict(frozen=True)

    id: UUID
    code: str = Field(pattern=POINT_CODE_PATTERN, description="Short human code, stable for the point's life.")
    version: int = Field(ge=1, description="Increases by one with every change of the point.")
    name_uk: str
    name_en: str | None = None
    category: PointCategory
    host_type: HostType
    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)
    address_uk: str
    address_en: str | None = None
    settlement: str = Field(description="Name of the settlement, in Ukrainian: what coarse points show.")
    katotth: str = Field(pattern=KATOTTH_PATTERN)
    capacity: int = Field(ge=1)
    services: list[Service]
    schedule: Schedule
    operator_org: str | None = Field(default=None, description="The organisation that runs the point.")
    public_phone: str | None = Field(default=None, pattern=E164_PATTERN)
    visibility: Visibility = Field(description="Effective visibility: the point's own, raised by its oblast's policy.")
    retired: bool = False
    updated_at: datetime


class OpenState(StrEnum):
    """Whether a point is open right now; unknown is only ever derived (never reported, or stale)."""

    open = "open"
    closed = "closed"
    full = "full"
    standby = "standby"
    unknown = "unknown"


class PowerSource(StrEnum):
    """Where the point's electricity comes from right now."""

    grid = "grid"
    generator = "generator"
    battery = "battery"
    none = "none"


class InternetLink(StrEnum):
    """How the point is connected to the internet right now."""

    fibre = "fibre"
    mobile = "mobile"
    starlink = "starlink"
    none = "none"


class StatusCause(StrEnum):
    """What made a status version."""

    report = "report"  # an operator, coordinator or admin reported
    activation = "activation"  # a coordinator activated the area
    deactivation = "deactivation"  # a coordinator deactivated the area
    stale = "stale"  # no report for too long: downgraded to unknown


class ServiceStatus(BaseModel):
    """Whether one service works right now, and when that was last confirmed."""

    model_config = ConfigDict(frozen=True)

    available: bool
    confirmed_at: datetime


class StatusState(BaseModel):
    """Full current live status of a point, carried by every status event."""

    model_config = ConfigDict(frozen=True)

    point_id: UUID
    version: int = Field(ge=1, description="Increases by one with every change of the point's status.")
    state: OpenState
    previous_state: OpenState | None = Field(default=None, description="The state of the previous version.")
    cause: StatusCause = StatusCause.report
    services: dict[Service, ServiceStatus] = Field(default_factory=dict)
    power: PowerSource | None = None
    fuel_hours: float | None = Field(default=None, ge=0, description="Generator fuel left, in hours.")
    low_fuel: bool = Field(default=False, description="Fuel left is under the configured threshold.")
    internet: InternetLink | None = None
    occupancy: int | None = Field(default=None, ge=0, description="People at the point now.")
    capacity: int | None = Field(default=None, ge=1, description="The point's capacity as status knew it.")
    note: str | None = None
    reported_at: datetime = Field(description="When a person last confirmed the status.")
    changed_at: datetime | None = Field(default=None, description="When this version was made.")
    reported_by: str = Field(description="Opaque id of the reporting account (never a phone number).")


class AreaAction(StrEnum):
    """A coordinator's bulk action on an area."""

    activate = "activate"
    deactivate = "deactivate"


class AreaActivation(BaseModel):
    """A coordinator switched the on-blackout points of an area on or off."""

    model_config = ConfigDict(frozen=True)

    id: UUID
    action: AreaAction
    katotth_prefix: str = Field(pattern=KATOTTH_SCOPE_PATTERN)
    category: PointCategory | None = None
    state: OpenState = Field(description="The state the points were put in.")
    points_changed: int = Field(ge=0)
    requested_by: str
    requested_at: datetime


@dataclass(frozen=True)
class StreamSpec:
    """A JetStream stream: its name suffix, the subject token under the namespace, and its bounds."""

    name: str
    token: str
    description: str
    max_msgs_per_subject: int
    max_age_s: float = 0  # 0: kept for ever
    max_bytes: int = -1  # -1: no size limit; when reached, the oldest messages go first
    work_queue: bool = False  # a message is removed once its consumer acknowledges it

    def stream_name(self, namespace: str) -> str:
        """The stream's name on the server, e.g. POI_POINTS."""
        return f"{namespace.upper()}_{self.name}"

    def subject(self, namespace: str, key: str) -> str:
        """The per-key subject, e.g. poi.points.<point id>."""
        return f"{namespace}.{self.token}.{key}"

    def wildcard(self, namespace: str) -> str:
        """Every subject of the stream."""
        return f"{namespace}.{self.token}.*"


@dataclass(frozen=True)
class EventType:
    """A versioned, past-tense event type and the stream and data model it uses."""

    type: str
    stream: StreamSpec
    data: builtins.type[BaseModel]
    summary: str


POINTS = StreamSpec(
    "POINTS", "points", "Point registered, updated, retired, restored: full state, one subject per point.", 64
)
STATUS = StreamSpec(
    "STATUS",
    "status",
    "Live status changes (full state, one subject per point) and area activations (one subject per area).",
    256,
)
# Dead letters wait for an operator (`poi deadletters`) at most this long, and take at most this much space.
DEAD_LETTER_MAX_AGE_S = 30 * 24 * 3600.0
DEAD_LETTER_MAX_BYTES = 1024**3
DEAD_LETTERS = StreamSpec(
    "DEADLETTERS",
    "deadletter",
    "Messages a consumer gave up on, with the reason.",
    -1,
    max_age_s=DEAD_LETTER_MAX_AGE_S,
    max_bytes=DEAD_LETTER_MAX_BYTES,
)
# Replayed dead letters go to their consumer only, never back to the original subject: there an old event would
# become the last message per subject, which search replicas rebuild from.
REPLAY = StreamSpec(
    "REPLAY",
    "replay",
    "Dead letters an operator sent back to the one consumer that gave up on them; removed once it handles them.",
    -1,
    max_age_s=DEAD_LETTER_MAX_AGE_S,
    max_bytes=DEAD_LETTER_MAX_BYTES,
    work_queue=True,
)
STREAMS = (POINTS, STATUS, DEAD_LETTERS, REPLAY)

POINT_REGISTERED = EventType("ua.poi.point.registered.v1", POINTS, PointState, "A point was registered.")
POINT_UPDATED = EventType("ua.poi.point.updated.v1", POINTS, PointState, "A point's details changed.")
POINT_RETIRED = EventType("ua.poi.point.retired.v1", POINTS, PointState, "A point was taken out of service.")
POINT_RESTORED = EventType("ua.poi.point.restored.v1", POINTS, PointState, "A retired point was put back in service.")
STATUS_CHANGED = EventType("ua.poi.status.changed.v1", STATUS, StatusState, "A point's live status changed.")
STATUS_STALE = EventType(
    "ua.poi.status.stale.v1", STATUS, StatusState, "A point stopped reporting and was downgraded to unknown."
)
STATUS_LOW_FUEL = EventType(
    "ua.poi.status.low_fuel.v1", STATUS, StatusState, "A point's generator fuel dropped under the threshold."
)
AREA_ACTIVATED = EventType(
    "ua.poi.status.area_activated.v1", STATUS, AreaActivation, "A coordinator activated an area's on-blackout points."
)
AREA_DEACTIVATED = EventType(
    "ua.poi.status.area_deactivated.v1", STATUS, AreaActivation, "A coordinator stood an area's points down."
)

EVENT_TYPES: dict[str, EventType] = {
    e.type: e
    for e in (
        POINT_REGISTERED,
        POINT_UPDATED,
        POINT_RETIRED,
        POINT_RESTORED,
        STATUS_CHANGED,
        STATUS_STALE,
        STATUS_LOW_FUEL,
        AREA_ACTIVATED,
        AREA_DEACTIVATED,
    )
}


def area_key(katotth_prefix: str) -> str:
    """The subject key of an area's activation events, beside the per-point keys of the status stream."""
    return f"area-{katotth_prefix}"
