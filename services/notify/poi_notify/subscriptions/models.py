"""Subscription requests and answers."""

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Literal
from uuid import UUID

from pydantic import BaseModel, Field, model_validator

from poi_shared.contracts import Service
from poi_shared.models import FromString, Line, RequestModel

CODE_PATTERN = r"^[0-9]{6}$"
Phone = Annotated[Line, Field(min_length=1, max_length=32, examples=["+380671234567", "0671234567"])]
Code = Annotated[str, Field(pattern=CODE_PATTERN, description="The 6-digit code the number received by SMS.")]


class Language(StrEnum):
    """The language of the messages a number gets."""

    uk = "uk"
    en = "en"


class Area(RequestModel):
    """A disk around a place: alerts about points inside it."""

    lat: float = Field(ge=44.0, le=53.0, description="Latitude (WGS 84), within Ukraine.")
    lon: float = Field(ge=22.0, le=41.0, description="Longitude (WGS 84), within Ukraine.")
    radius_m: int = Field(
        ge=1, le=100_000, description="Radius in metres, at most the service's cap (20 km by default)."
    )


class SubscribeRequest(RequestModel):
    """Subscribe a mobile number to one point's changes or to points opening in an area."""

    phone: Phone
    language: Annotated[Language, FromString] = Language.uk
    latin: bool = Field(default=False, description="Send Ukrainian in Latin letters (KMU-55): cheaper SMS.")
    point_id: Annotated[UUID | None, FromString] = None
    area: Area | None = None
    services: list[Annotated[Service, FromString]] = Field(
        default_factory=list, max_length=20, description="Only points offering all of these; empty: any."
    )

    @model_validator(mode="after")
    def one_target(self) -> "SubscribeRequest":
        """Exactly one of point_id and area."""
        if (self.point_id is None) == (self.area is None):
            raise ValueError("give exactly one of point_id and area")
        return self


class ConfirmRequest(RequestModel):
    """The code a number received, to confirm what it asked for."""

    phone: Phone
    code: Code


class UnsubscribeRequest(RequestModel):
    """Without a code: send one to the number. With it: remove every subscription of the number."""

    phone: Phone
    code: Code | None = None


class Accepted(BaseModel):
    """A request taken; the number gets an SMS with a code."""

    id: UUID | None = Field(default=None, description="The subscription's id, to look up its state.")
    status: Literal["confirmation sent"] = "confirmation sent"
    phone: str = Field(description="The number, masked.")
    code_expires_in_s: int


class Confirmed(BaseModel):
    """A code accepted."""

    status: Literal["subscribed", "unsubscribed"]
    subscriptions: int = Field(description="Subscriptions confirmed, or removed.")


class SubscriptionState(BaseModel):
    """A subscription as anyone with its id may see it: never the number in clear."""

    id: UUID
    state: Literal["pending", "active", "stopped"]
    kind: Literal["point", "area"]
    point_id: UUID | None
    lat: float | None
    lon: float | None
    radius_m: int | None
    services: list[str]
    language: str
    latin: bool
    phone: str = Field(description="The number, masked (+38067*****67).")
    created_at: datetime
