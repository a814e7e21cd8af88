"""What operators send, and the status the public reads."""

from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, field_validator

from poi_shared.contracts import InternetLink, OpenState, PowerSource, Service, ServiceStatus, StatusCause
from poi_shared.models import FromString, RequestModel, Text

# A report is a few hundred bytes from a phone on a weak connection; anything much larger is not a report.
REPORT_MAX_BYTES = 4096
# A generator tank lasting more than a month is a typing mistake, not a report.
MAX_FUEL_HOURS = 720.0
# People at a point: never more than this, and never more than OVERCROWDING times the point's capacity.
MAX_OCCUPANCY = 20_000
OVERCROWDING = 2
# People served since the previous report.
MAX_SERVED = 10_000
NOTE_MAX_LENGTH = 500

ReportedState = Literal["open", "closed", "full", "standby"]


class StatusReport(RequestModel):
    """An operator's report: only what changed is needed; an empty report confirms the status as it is.

    A field left out keeps its value; `null` clears power, fuel_hours, internet, occupancy or note.
    """

    state: ReportedState | None = Field(
        default=None,
        description="open, closed, full or standby (unknown is only ever derived). Needed when the point's status "
        "is unknown. `open` becomes `full` when occupancy reaches capacity.",
    )
    services: dict[Annotated[Service, FromString], bool] = Field(
        default_factory=dict,
        max_length=len(Service),
        description="Whether each service works right now; only services the point offers.",
    )
    power: Annotated[PowerSource, FromString] | None = Field(default=None, description="Where electricity comes from.")
    fuel_hours: float | None = Field(
        default=None, ge=0, le=MAX_FUEL_HOURS, description="Generator fuel left, in hours."
    )
    internet: Annotated[InternetLink, FromString] | None = Field(default=None, description="How the point is online.")
    occupancy: int | None = Field(
        default=None,
        ge=0,
        le=MAX_OCCUPANCY,
        description=f"People at the point now; at most {OVERCROWDING} times its capacity.",
    )
    served: int = Field(
        default=0,
        ge=0,
        le=MAX_SERVED,
        description="People served since the previous report; added to the point's count for today (Kyiv time).",
    )
    note: Text | None = Field(default=None, max_length=NOTE_MAX_LENGTH, description="A short note for the public.")

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "state": "open",
                    "services": {"heat": True, "charging": True, "internet": True},
                    "power": "generator",
                    "fuel_hours": 7.5,
                    "internet": "starlink",
                    "occupancy": 35,
                    "served": 12,
                    "note": "Вхід з двору",
                },
                {"occupancy": 60},
                {},
            ]
        }
    )

    @field_validator("state")
    @classmethod
    def state_is_not_cleared(cls, value: str | None) -> str | None:
        """A state may be left out, but not cleared."""
        if value is None:
            raise ValueError("leave state out to keep it; it cannot be null")
        return value


class PublicStatus(BaseModel):
    """A point's current status as the public sees it (who reported stays private)."""

    point_id: UUID
    version: int = Field(ge=0, description="0 until the point's first status.")
    state: OpenState
    previous_state: OpenState | None = Field(default=None, description="The state of the previous version.")
    cause: StatusCause | None = Field(default=None, description="What made this version.")
    services: dict[Service, ServiceStatus] = Field(default_factory=dict)
    power: PowerSource | None = None
    fuel_hours: float | None = None
    low_fuel: bool = False
    internet: InternetLink | None = None
    occupancy: int | None = None
    capacity: int | None = None
    note: str | None = None
    reported_at: datetime | None = Field(default=None, description="When a person last confirmed the status.")
    changed_at: datetime | None = Field(default=None, description="When this version was made.")
    age_s: int | None = Field(default=None, description='Seconds since reported_at: "confirmed 12 min ago".')


class PublicStatuses(BaseModel):
    """The current status of each point asked for that the public may see."""

    items: list[PublicStatus]
    missing: list[UUID] = Field(description="Ids asked for that are unknown, hidden or retired.")
