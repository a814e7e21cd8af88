"""What coordinators send to switch areas, and what they get back."""

from typing import Annotated, Literal
from uuid import UUID

from pydantic import BaseModel, Field

from poi_shared.contracts import KATOTTH_SCOPE_PATTERN, AreaAction, OpenState, PointCategory
from poi_shared.models import FromString, RequestModel

MAX_AREAS = 50
AreaCode = Annotated[str, Field(pattern=KATOTTH_SCOPE_PATTERN, examples=["UA46"])]


class DeactivateAreas(RequestModel):
    """The areas (KATOTTH codes cut at oblast level or below, within your scope), and optionally one category."""

    katotth: list[AreaCode] = Field(min_length=1, max_length=MAX_AREAS, description='E.g. ["UA46", "UA1402"].')
    category: Annotated[PointCategory, FromString] | None = Field(
        default=None, description="Only points of this category."
    )


class ActivateAreas(DeactivateAreas):
    """As for deactivation, and the state the points are put in."""

    state: Literal["open", "standby"] = Field(
        default="open", description="open (take people now) or standby (ready, not yet open)."
    )


class AreaOutcome(BaseModel):
    """What a switch did in one area."""

    katotth_prefix: str
    points_in_area: int = Field(description="On-blackout points in service in the area (and category).")
    points_changed: int = Field(description="Those that were not in the state already; each got its own event.")
    event_id: UUID | None = Field(description="The area event's id; none when nothing changed (a repeat).")


class AreaSwitched(BaseModel):
    """What a switch did in each area."""

    action: AreaAction
    state: OpenState
    category: PointCategory | None
    points_changed: int
    areas: list[AreaOutcome]
