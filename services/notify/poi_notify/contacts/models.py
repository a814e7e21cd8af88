"""Coordinator contacts as the admin API shows them."""

from datetime import datetime
from typing import Literal
from uuid import UUID

from pydantic import BaseModel, Field

from poi_shared.contracts import KATOTTH_SCOPE_PATTERN
from poi_shared.models import Line, RequestModel


class ContactCreate(RequestModel):
    """A number to receive ops alerts (stale points, low fuel) of points in a region."""

    phone: Line = Field(max_length=32, description="A mobile number, E.164 or Ukrainian national form.")
    katotth_prefix: str = Field(
        pattern=KATOTTH_SCOPE_PATTERN, description="The region: a KATOTTH code cut at oblast level or below."
    )
    language: Literal["uk", "en"] = "uk"


class Contact(BaseModel):
    """A registered contact; the number is masked."""

    id: UUID
    phone: str = Field(description="The number with its middle digits masked.")
    katotth_prefix: str
    language: str
    created_at: datetime


class ContactPage(BaseModel):
    """One page; pass next_after to get the next."""

    items: list[Contact]
    next_after: UUID | None
