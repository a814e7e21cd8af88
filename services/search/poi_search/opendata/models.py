"""Query strings of the open-data routes, and the OGC API documents' shapes (documented in OpenAPI)."""

from typing import Literal

from pydantic import BaseModel, Field, field_validator

from poi_search.catalog.models import BBOX_PATTERN, FilterQuery, Query, parse_box
from poi_search.catalog.readmodel import Box

CRS84 = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"
CONFORMANCE = [
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/geojson",
]
# RFC 3339 instant, or interval with open ends ("..") — accepted and ignored: points have no time extent.
DATETIME_PATTERN = (
    r"^(?:\.\.|\d{4}-\d{2}-\d{2}(?:[Tt ]\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:[Zz]|[+-]\d{2}:\d{2}))?)"
    r"(?:/(?:\.\.|\d{4}-\d{2}-\d{2}(?:[Tt ]\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:[Zz]|[+-]\d{2}:\d{2}))?))?$"
)


class ExportQuery(Query):
    """How a full export is sent."""

    download: bool = Field(default=False, description="Send it as a file to save (Content-Disposition: attachment).")


class OgcQuery(Query):
    """The OGC API documents take only the format."""

    f: Literal["json"] | None = Field(default=None, description="The format: JSON, the only one served.")


class ItemsQuery(FilterQuery):
    """OGC API – Features items, with the search filters as extra parameters."""

    bbox: str | None = Field(
        default=None,
        pattern=BBOX_PATTERN,
        description="west,south,east,north in degrees (CRS84); boxes across the antimeridian are refused.",
    )
    limit: int = Field(default=10, ge=1, le=10_000, description="Features per page.")
    after: str | None = Field(
        default=None,
        pattern=r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$",
        description="Start after this feature id (the next link carries it): pages hold across replicas.",
    )
    datetime: str | None = Field(
        default=None, pattern=DATETIME_PATTERN, description="Accepted and ignored: points have no time extent."
    )
    f: Literal["json", "geojson"] | None = Field(default=None, description="The format: GeoJSON.")

    @field_validator("bbox")
    @classmethod
    def ordered_box(cls, value: str | None) -> str | None:
        """Each bound in range, west not east of east, south not north of north."""
        if value is not None:
            parse_box(value)
        return value

    def box(self) -> Box | None:
        """The box the query names, if any."""
        return None if self.bbox is None else parse_box(self.bbox)


class Link(BaseModel):
    """A link of an OGC API document."""

    href: str
    rel: str
    type: str | None = None
    title: str | None = None


class LandingPage(BaseModel):
    """The OGC API's landing page."""

    title: str
    description: str
    links: list[Link]


class Conformance(BaseModel):
    """The conformance classes this API implements."""

    conformsTo: list[str]


class Collection(BaseModel):
    """The points collection."""

    id: str
    title: str
    description: str
    itemType: str
    crs: list[str]
    extent: dict[str, object]
    links: list[Link]


class Collections(BaseModel):
    """The collections this API serves: points only."""

    links: list[Link]
    collections: list[Collection]
