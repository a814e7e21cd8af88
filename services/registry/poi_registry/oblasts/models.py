"""What clients send and receive about oblast policies."""

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, Field

from poi_shared.contracts import Visibility
from poi_shared.models import FromString, RequestModel


class PolicyChange(RequestModel):
    """The visibility every point of the oblast gets at least; public lifts the policy."""

    visibility: Annotated[Visibility, FromString]


class OblastPolicy(BaseModel):
    """An oblast and the visibility its policy forces (public: none)."""

    oblast: str = Field(description="KATOTTH oblast code, e.g. UA14.")
    name_uk: str
    name_en: str
    visibility: Visibility
    set_by: str | None
    set_at: datetime | None


class PolicyApplied(OblastPolicy):
    """A policy as set, and how many points' effective visibility it changed (each one an updated event)."""

    points_changed: int
