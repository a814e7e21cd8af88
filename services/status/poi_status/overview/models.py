"""What coordinators read: lists of points needing attention, counts by state, visitors."""

from datetime import date, datetime
from enum import StrEnum
from uuid import UUID

from pydantic import BaseModel, Field

from poi_shared.contracts import OpenState, PointCategory, PowerSource, StatusCause


class AttentionKind(StrEnum):
    """Which points a list holds."""

    stale = "stale"  # downgraded to unknown: stopped reporting
    low_fuel = "low_fuel"  # fuel under the threshold
    full = "full"  # no free places


class AreaLevel(StrEnum):
    """How statistics are grouped."""

    oblast = "oblast"
    raion = "raion"


LEVEL_DIGITS = {AreaLevel.oblast: 4, AreaLevel.raion: 6}  # characters of the KATOTTH code, "UA" included


class AttentionItem(BaseModel):
    """A point that needs a coordinator's attention, with who last reported on it."""

    point_id: UUID
    code: str | None
    name_uk: str | None
    settlement: str | None
    katotth: str
    category: PointCategory
    state: OpenState
    cause: StatusCause
    power: PowerSource | None
    fuel_hours: float | None
    low_fuel: bool
    occupancy: int | None
    capacity: int | None
    note: str | None
    reported_by: str | None = Field(description="The account that last reported (staff only).")
    reported_at: datetime | None
    changed_at: datetime | None
    age_s: int | None = Field(description="Seconds since the last report.")


class AttentionPage(BaseModel):
    """One page of a list, most urgent first; pass next_cursor as cursor for the next."""

    kind: AttentionKind
    items: list[AttentionItem]
    next_cursor: str | None


class AreaStates(BaseModel):
    """Points in service in an area, by state."""

    katotth: str = Field(description="The area: the KATOTTH code cut at the level asked for; UA for all.")
    points: int
    states: dict[OpenState, int]
    low_fuel: int


class StateCounts(BaseModel):
    """Points in service by state, per area and in total."""

    by: AreaLevel
    areas: list[AreaStates]
    total: AreaStates


class DayVisitors(BaseModel):
    """People served on a day (Kyiv time)."""

    day: date
    served: int


class AreaVisitors(BaseModel):
    """People served in an area over the period."""

    katotth: str
    served: int


class Visitors(BaseModel):
    """People served in the period: in total, per day and per area."""

    since: date
    until: date
    by: AreaLevel
    total: int
    days: list[DayVisitors]
    areas: list[AreaVisitors]
