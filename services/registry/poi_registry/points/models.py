"""What clients send and receive about points, and the stored point the views are made from.

Responses have models of their own (a public and a private view), never the event contract, so a field added to
an event cannot leak into a public response.
"""

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Literal
from uuid import UUID

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator

from poi_shared.contracts import (
    E164_PATTERN,
    KATOTTH_PATTERN,
    POINT_CODE_PATTERN,
    HostType,
    PointCategory,
    Schedule,
    Service,
    Visibility,
)
from poi_shared.models import FromString, Line, RequestModel

OPERATIONAL_FIELDS = frozenset({"schedule", "services", "public_phone", "contact_phone"})
"""What an operator may change on their own points: when it opens (with its note), what it offers, its phones."""


def _sorted_unique(value: list[Service]) -> list[Service]:
    """Each service once, in a stable order."""
    return sorted(set(value))


Name = Annotated[Line, Field(min_length=2, max_length=200)]
Address = Annotated[Line, Field(min_length=3, max_length=500)]
SettlementName = Annotated[Line, Field(min_length=2, max_length=120)]
Latitude = Annotated[float, Field(ge=-90, le=90, description="WGS84 latitude.")]
Longitude = Annotated[float, Field(ge=-180, le=180, description="WGS84 longitude.")]
Katotth = Annotated[str, Field(pattern=KATOTTH_PATTERN, description="KATOTTH code: UA and 17 digits.")]
Capacity = Annotated[int, Field(ge=1, le=10_000, description="People the point can hold at once.")]
Phone = Annotated[str, Field(pattern=E164_PATTERN, description="E.164, e.g. +380441234567.")]
Services = Annotated[
    list[Annotated[Service, FromString]], Field(max_length=len(Service)), AfterValidator(_sorted_unique)
]
PointCode = Annotated[str, Field(pattern=POINT_CODE_PATTERN, description="Short human code, e.g. 80-000123.")]


class PointCreate(RequestModel):
    """A new point, as a coordinator registers it (the registry gives it its code)."""

    name_uk: Name = Field(examples=["Пункт незламності, школа №5"])
    name_en: Name | None = None
    category: Annotated[PointCategory, FromString]
    host_type: Annotated[HostType, FromString] = HostType.other
    lat: Latitude = Field(examples=[50.4501])
    lon: Longitude = Field(examples=[30.5234])
    katotth: Katotth
    address_uk: Address = Field(examples=["вул. Хрещатик, 1, Київ"])
    address_en: Address | None = None
    settlement: SettlementName = Field(examples=["Київ"])
    capacity: Capacity
    services: Services = Field(default_factory=list)
    schedule: Schedule = Field(default_factory=Schedule)
    operator_org: Name | None = Field(default=None, description="The organisation that runs the point.")
    public_phone: Phone | None = None
    contact_phone: Phone | None = Field(default=None, description="Private: coordinators and admins only.")
    visibility: Annotated[Visibility, FromString] = Field(
        default=Visibility.public, description="The point's own visibility; its oblast's policy may raise it."
    )


class PointPatch(RequestModel):
    """Changes to a point: the fields given replace the stored ones (schedule as a whole); null clears one."""

    name_uk: Name | None = None
    name_en: Name | None = None
    category: Annotated[PointCategory, FromString] | None = None
    host_type: Annotated[HostType, FromString] | None = None
    lat: Latitude | None = None
    lon: Longitude | None = None
    katotth: Katotth | None = None
    address_uk: Address | None = None
    address_en: Address | None = None
    settlement: SettlementName | None = None
    capacity: Capacity | None = None
    services: Services | None = None
    schedule: Schedule | None = None
    operator_org: Name | None = None
    public_phone: Phone | None = None
    contact_phone: Phone | None = None
    visibility: Annotated[Visibility, FromString] | None = None

    @field_validator(
        "name_uk", "category", "host_type", "lat", "lon", "katotth", "address_uk", "settlement", "capacity",
        "services", "schedule", "visibility",
    )  # fmt: skip
    @classmethod
    def required_field_is_not_null(cls, value: object) -> object:
        """A point always has these, so they may be changed but not cleared."""
        if value is None:
            raise ValueError("may be changed but not cleared (null)")
        return value

    def changes(self) -> dict[str, object]:
        """The fields the client sent, with their new values."""
        return {name: getattr(self, name) for name in self.model_fields_set}


class StoredPoint(BaseModel):
    """A point as the registry stores it: the full state, private fields included."""

    model_config = ConfigDict(frozen=True)

    id: UUID
    code: str
    version: int
    name_uk: str
    name_en: str | None
    category: PointCategory
    host_type: HostType
    lat: float
    lon: float
    address_uk: str
    address_en: str | None
    settlement: str
    katotth: str
    capacity: int
    services: list[Service]
    schedule: Schedule
    operator_org: str | None
    public_phone: str | None
    contact_phone: str | None
    visibility: Visibility
    effective_visibility: Visibility
    oblast_visibility: Visibility | None
    created_at: datetime
    updated_at: datetime
    retired_at: datetime | None


class PointView(BaseModel):
    """What every view of a point shows."""

    id: UUID
    code: str = Field(description="Short human code, stable for the point's life.")
    version: int = Field(description="Grows by one with every change; the ETag of the point.")
    name_uk: str
    name_en: str | None
    category: PointCategory
    host_type: HostType
    lat: float
    lon: float
    address_uk: str
    address_en: str | None
    settlement: str
    katotth: str
    capacity: int
    services: list[Service]
    schedule: Schedule
    operator_org: str | None
    public_phone: str | None
    retired: bool = Field(description="Retired points stay readable for history and leave search.")
    updated_at: datetime


class PublicPoint(PointView):
    """A point as the public sees it: a coarse point at its rounded place, with the settlement for address."""

    view: Literal["public"] = "public"
    exact_location: bool = Field(description="False for a coarse point: position rounded, settlement as address.")


class PrivatePoint(PointView):
    """A point as those who manage it see it: exact place, own and effective visibility, private contact."""

    view: Literal["private"] = "private"
    contact_phone: str | None = Field(description="Private contact; shown to coordinators and admins (null to others).")
    visibility: Visibility = Field(description="The point's own visibility.")
    oblast_visibility: Visibility | None = Field(description="What its oblast's policy forces, if anything.")
    effective_visibility: Visibility = Field(description="The stricter of the two: what the public gets.")
    created_at: datetime
    retired_at: datetime | None


class Lifecycle(StrEnum):
    """Which points a list holds."""

    active = "active"
    retired = "retired"
    all = "all"


class PointPage(BaseModel):
    """One page of a list: each point in the view the caller has of it, the total, and the next page's cursor."""

    items: list[Annotated[PrivatePoint | PublicPoint, Field(discriminator="view")]]
    total: int = Field(description="How many points match the filters, over all pages.")
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last one.")


class Change(BaseModel):
    """One field's change."""

    field: str
    old: object = None
    new: object = None


class HistoryEntry(BaseModel):
    """One version of a point: who made it, when, why and what changed."""

    version: int
    action: Literal["registered", "updated", "retired", "restored"]
    changed_by: str = Field(description="The account (token subject) that made the change.")
    changed_at: datetime
    reason: str | None = Field(description="What made the change beside a direct edit: an import, an oblast policy.")
    changes: list[Change]


class History(BaseModel):
    """A point's versions, newest first."""

    point_id: UUID
    items: list[HistoryEntry]
    next_before: int | None = Field(description="Pass as `before` for older versions; null when none are left.")


class ListFilters(BaseModel):
    """What a list is filtered by (already validated by the route's query parameters)."""

    model_config = ConfigDict(frozen=True)

    katotth: str | None = None
    category: PointCategory | None = None
    services: tuple[Service, ...] = ()
    visibility: Visibility | None = None
    lifecycle: Lifecycle = Lifecycle.active
    changed_since: datetime | None = None
