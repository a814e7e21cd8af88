"""What clients send and receive about points."""

from typing import Annotated

from pydantic import Field, field_validator

from poi_shared.contracts import (
    E164_PATTERN,
    KATOTTH_PATTERN,
    HostType,
    PointCategory,
    Schedule,
    Service,
    Visibility,
)
from poi_shared.models import FromString, Line, RequestModel


class PointCreate(RequestModel):
    """A new point, as a coordinator registers it."""

    name_uk: Line = Field(min_length=2, max_length=200, examples=["Пункт незламності, школа №5"])
    name_en: Line | None = Field(default=None, min_length=2, max_length=200)
    category: Annotated[PointCategory, FromString]
    host_type: Annotated[HostType, FromString] = HostType.other
    lat: float = Field(ge=-90, le=90, examples=[50.4501])
    lon: float = Field(ge=-180, le=180, examples=[30.5234])
    katotth: str = Field(pattern=KATOTTH_PATTERN, description="KATOTTH code: UA and 17 digits.")
    address_uk: Line = Field(min_length=3, max_length=500, examples=["вул. Хрещатик, 1, Київ"])
    address_en: Line | None = Field(default=None, min_length=3, max_length=500)
    settlement: Line = Field(min_length=2, max_length=120, examples=["Київ"])
    capacity: int = Field(ge=1, le=10_000, description="People the point can hold at once.")
    services: list[Annotated[Service, FromString]] = Field(default_factory=list, max_length=len(Service))
    schedule: Schedule = Field(default_factory=Schedule)
    operator_org: Line | None = Field(default=None, min_length=2, max_length=200)
    public_phone: str | None = Field(default=None, pattern=E164_PATTERN)
    contact_phone: str | None = Field(default=None, pattern=E164_PATTERN, description="Private: staff only.")
    visibility: Annotated[Visibility, FromString] = Visibility.public

    @field_validator("services")
    @classmethod
    def unique_services(cls, value: list[Service]) -> list[Service]:
        """Each service once, in a stable order."""
        return sorted(set(value))
