"""The event contract: every stream, subject and event type, with the data each carries.

Producers and consumers both import these models, so the two sides cannot drift.
"""

import builtins
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

KATOTTH_PATTERN = r"^UA\d{17}$"
KATOTTH_PREFIX_PATTERN = r"^UA(\d{2}){0,1}(\d{2}){0,1}(\d{3}){0,1}(\d{3}){0,1}\d{0,7}$"


class PointCategory(StrEnum):
    """The three categories of the official map."""

    state = "state"
    business = "business"
    essential = "essential"


class Visibility(StrEnum):
    """Graded visibility for security: hidden points never reach the public."""

    public = "public"
    coarse = "coarse"
    hidden = "hidden"


class Facility(StrEnum):
    """What a point offers, as searchable facts."""

    heat = "heat"
    water = "water"
    electricity = "electricity"
    charging = "charging"
    internet = "internet"
    mobile_connection = "mobile_connection"
    rest = "rest"
    first_aid = "first_aid"
    mother_child = "mother_child"
    hot_drinks = "hot_drinks"
    food = "food"
    accessible = "accessible"
    pets = "pets"


class OpenState(StrEnum):
    """Whether a point is open right now, as its operator last said."""

    open = "open"
    closed = "closed"
    unknown = "unknown"


class PointState(BaseModel):
    """Full current state of a point, carried by every point event."""

    model_config = ConfigDict(frozen=True)

    id: UUID
    version: int = Field(ge=1, description="Increases by one with every change of the point.")
    name_uk: str
    name_en: str | None = None
    category: PointCategory
    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)
    katotth: str = Field(pattern=KATOTTH_PATTERN)
    address: str
    capacity: int = Field(ge=1)
    facilities: list[Facility]
    visibility: Visibility
    retired: bool = False
    updated_at: datetime


class StatusState(BaseModel):
    """Full current live status of a point, carried by every status event."""

    model_config = ConfigDict(frozen=True)

    point_id: UUID
    version: int = Field(ge=1, description="Increases by one with every report on the point.")
    state: OpenState
    note: str | None = None
    reported_at: datetime
    reported_by: str = Field(description="Opaque id of the reporting account (never a phone number).")


@dataclass(frozen=True)
class StreamSpec:
    """A JetStream stream: its name suffix and the subject token under the namespace."""

    name: str
    token: str
    description: str
    max_msgs_per_subject: int

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


POINTS = StreamSpec("POINTS", "points", "Point registered, updated, retired: full state, one subject per point.", 64)
STATUS = StreamSpec("STATUS", "status", "Live status changes: full state, one subject per point.", 256)
DEAD_LETTERS = StreamSpec("DEADLETTERS", "deadletter", "Messages a consumer gave up on, with the reason.", -1)
STREAMS = (POINTS, STATUS, DEAD_LETTERS)

POINT_REGISTERED = EventType("ua.poi.point.registered.v1", POINTS, PointState, "A point was registered.")
POINT_UPDATED = EventType("ua.poi.point.updated.v1", POINTS, PointState, "A point's details changed.")
POINT_RETIRED = EventType("ua.poi.point.retired.v1", POINTS, PointState, "A point was taken out of service.")
STATUS_CHANGED = EventType("ua.poi.status.changed.v1", STATUS, StatusState, "An operator reported a status.")

EVENT_TYPES: dict[str, EventType] = {
    e.type: e for e in (POINT_REGISTERED, POINT_UPDATED, POINT_RETIRED, STATUS_CHANGED)
}
