"""What operators send."""

from typing import Literal

from pydantic import BaseModel, Field

from poi_shared.contracts import OpenState
from poi_shared.models import RequestModel, Text


class StatusReport(RequestModel):
    """An operator's report on a point."""

    state: Literal["open", "closed"]
    note: Text | None = Field(default=None, max_length=500)


class StatusView(BaseModel):
    """A point's current status as the public sees it (who reported stays private)."""

    point_id: str
    state: OpenState
    version: int = Field(description="0 until the first report.")
    note: str | None = None
    reported_at: str | None = Field(default=None, description="When the operator last confirmed, ISO 8601.")
