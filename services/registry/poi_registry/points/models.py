"""What clients send and receive about points."""

from pydantic import BaseModel, ConfigDict, Field, field_validator

from poi_shared.contracts import (
    E164_PATTERN,
    KATOTTH_PATTERN,
    HostType,
    PointCategory,
    Schedule,
    Service,
    Visibility,
)


class PointCreate(BaseModel):
    """A new point, as a coordinator registers it."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    name_uk: str = Field(min_length=2, max_length=200, examples=["Пункт незламності, школа №5"])
    name_en: str | None = Field(default=None, min_length=2, max_length=200)
    category: PointCategory
    host_type: HostType = HostType.other
    lat: float = Field(ge=-90, le=90, examples=[50.4501])
    lon: float = Field(ge=-180, le=180, examples=[30.5234])
    katotth: str = Field(pattern=KATOTTH_PATTERN, description="KATOTTH code: UA and 17 digits.")
    address_uk: str = Field(min_length=3, max_length=500, examples=["вул. Хрещатик, 1, Київ"])
    address_en: str | None = Field(default=None, min_length=3, max_length=500)
    settlement: str = Field(min_length=2, max_length=120, examples=["Київ"])
    capacity: int = Field(ge=1, le=10_000, description="People the point can hold at once.")
    services: list[Service] = Field(default_factory=list, max_length=len(Service))
    schedule: Schedule = Field(default_factory=Schedule)
    operator_org: str | None = Field(default=None, min_length=2, max_length=200)
    public_phone: str | None = Field(default=None, pattern=E164_PATTERN)
    contact_phone: str | None = Field(default=None, pattern=E164_PATTERN, description="Private: staff only.")
    visibility: Visibility = Visibility.public

    @field_validator("services")
    @classmethod
    def unique_services(cls, value: list[Service]) -> list[Service]:
        """Each service once, in a stable order."""
        return sorted(set(value))
