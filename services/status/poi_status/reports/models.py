"""What operators send."""

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from poi_shared.contracts import OpenState


class StatusReport(BaseModel):
    """An operator's report on a point."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    state: Literal["open", "closed"]
    note: str | None = Field(default=None, max_length=500)


class StatusView(BaseModel):
    """A point's current status as the public sees it (who reported stays private)."""

    point_id: str
    state: OpenState
    version: int = Field(description="0 until the first report.")
    note: str | None = None
    reported_at: str | None = Field(default=None, description="When the operator last confirmed, ISO 8601.")
