"""What clients send and receive about points."""

from pydantic import BaseModel, ConfigDict, Field, field_validator

from poi_shared.contracts import KATOTTH_PATTERN, Facility, PointCategory, Visibility


class PointCreate(BaseModel):
    """A new point, as a coordinator registers it."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    name_uk: str = Field(min_length=2, max_length=200, examples=["Пункт незламності, школа №5"])
    name_en: str | None = Field(default=None, min_length=2, max_length=200)
    category: PointCategory
    lat: float = Field(ge=-90, le=90, examples=[50.4501])
    lon: float = Field(ge=-180, le=180, examples=[30.5234])
    katotth: str = Field(pattern=KATOTTH_PATTERN, description="KATOTTH code: UA and 17 digits.")
    address: str = Field(min_length=3, max_length=500)
    capacity: int = Field(ge=1, le=10_000, description="People the point can hold at once.")
    facilities: list[Facility] = Field(default_factory=list, max_length=len(Facility))
    visibility: Visibility = Visibility.public

    @field_validator("facilities")
    @classmethod
    def unique_facilities(cls, value: list[Facility]) -> list[Facility]:
        """Each facility once, in a stable order."""
        return sorted(set(value))
