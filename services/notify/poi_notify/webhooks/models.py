"""What integrators send to register webhooks, and what they get back."""

from datetime import datetime
from enum import StrEnum
from typing import Annotated
from uuid import UUID

from pydantic import BaseModel, Field

from poi_shared.contracts import KATOTTH_PREFIX_PATTERN, STATUS_CHANGED, STATUS_LOW_FUEL, STATUS_STALE
from poi_shared.models import FromString, Line, RequestModel

MAX_PREFIXES = 50
MAX_URL_LENGTH = 2048


class WebhookEventType(StrEnum):
    """The status events a webhook may ask for (the contract's names)."""

    changed = STATUS_CHANGED.type
    stale = STATUS_STALE.type
    low_fuel = STATUS_LOW_FUEL.type


KatotthPrefix = Annotated[str, Field(pattern=KATOTTH_PREFIX_PATTERN, examples=["UA80"])]


class Disk(RequestModel):
    """Points within radius_m metres of a place."""

    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)
    radius_m: int = Field(ge=1, le=20_000_000, description="Metres (capped by the service).")


class NewWebhook(RequestModel):
    """An endpoint and its filter: which event types, and which area (KATOTTH prefixes and/or a disk)."""

    url: Line = Field(
        min_length=8,
        max_length=MAX_URL_LENGTH,
        description="An https URL whose host resolves to public addresses only.",
        examples=["https://integrator.example/poi-events"],
    )
    event_types: list[Annotated[WebhookEventType, FromString]] = Field(
        min_length=1, max_length=len(WebhookEventType), description="Status event types to receive."
    )
    katotth: list[KatotthPrefix] = Field(
        default_factory=list,
        max_length=MAX_PREFIXES,
        description="Points whose KATOTTH code starts with one of these (UA80: Kyiv).",
    )
    area: Disk | None = Field(default=None, description="Points within this disk (either this or katotth matches).")
    description: Line | None = Field(default=None, max_length=200)


class WebhookChange(RequestModel):
    """Switch an endpoint on or off: while off, nothing new is queued for it and what is pending waits."""

    enabled: bool


class Webhook(BaseModel):
    """A registered endpoint (its secret is shown only when registered)."""

    id: UUID
    url: str
    description: str | None
    event_types: list[str]
    katotth: list[str]
    area: dict[str, float] | None = Field(description="lat, lon and radius_m, when the filter has a disk.")
    enabled: bool
    disabled_reason: str | None = Field(
        default=None,
        description="Why notify switched the endpoint off (its last deliveries all failed); switching it on clears it.",
    )
    created_at: datetime
    updated_at: datetime


class RegisteredWebhook(Webhook):
    """A new endpoint with the secret its deliveries are signed with: keep it, it is not shown again."""

    secret: str = Field(description="HMAC-SHA256 key of the webhook-signature header.")


class WebhookList(BaseModel):
    """The caller's endpoints."""

    items: list[Webhook]


class DeliveryState(StrEnum):
    """Where a delivery is."""

    pending = "pending"
    delivered = "delivered"
    dead = "dead"


class Delivery(BaseModel):
    """One event for one endpoint, and how sending it went."""

    id: UUID
    seq: int = Field(description="Order of queueing; pass the last one as after_seq for the next page.")
    event_id: str = Field(description="The CloudEvent id (the same for every endpoint that gets the event).")
    event_type: str
    state: DeliveryState
    attempts: int
    next_attempt_at: datetime | None = Field(description="When a pending delivery is tried next.")
    last_status: int | None = Field(description="The HTTP status of the last attempt; none if it got no answer.")
    last_error: str | None
    created_at: datetime
    delivered_at: datetime | None


class DeliveryPage(BaseModel):
    """One page of deliveries; pass next_after_seq to get the next."""

    items: list[Delivery]
    next_after_seq: int | None


class Replayed(BaseModel):
    """How many dead deliveries were queued again."""

    replayed: int
