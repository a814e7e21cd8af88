"""The change feed's query string and answer (documented in OpenAPI)."""

from typing import Literal

from pydantic import BaseModel, Field

from poi_search.catalog.models import DATA_AGE, Item, Query
from poi_shared.models import INT64_MAX

CURSOR_PATTERN = r"^\d{1,19}-\d{1,19}$"


class ChangesQuery(Query):
    """Where the client is in the feed."""

    cursor: str | None = Field(
        default=None,
        pattern=CURSOR_PATTERN,
        description="The next_cursor of the previous page; leave it out to start with every public point.",
    )
    limit: int = Field(default=500, ge=1, le=INT64_MAX, description="Changes per page (capped by the service).")


class ChangeItem(BaseModel):
    """A point that changed: its whole public view, or that the public may no longer see it."""

    id: str
    change: Literal["upsert", "remove"] = Field(description="remove: hidden or retired; drop it from the mirror.")
    point: Item | None = Field(default=None, description="With upsert: the point as search answers it now.")


class ChangesAnswer(BaseModel):
    """A page of changes, oldest first; apply them by id (a point may appear more than once)."""

    items: list[ChangeItem]
    count: int
    next_cursor: str = Field(description="Send it as cursor to get what changed after this page.")
    has_more: bool = Field(description="More changes wait: ask again at once.")
    data_age_s: float = Field(description=DATA_AGE)
