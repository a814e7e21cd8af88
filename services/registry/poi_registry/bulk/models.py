"""What an import reads from each row, and the report it answers with."""

from pydantic import BaseModel, ConfigDict, Field

from poi_registry.points.models import PointCode, PointCreate


class FeatureRow(PointCreate):
    """A GeoJSON feature's point: the API's fields and types, with its code."""

    code: PointCode


class CsvRow(FeatureRow):
    """A CSV row's point: as a feature's, with numbers read from their text."""

    model_config = ConfigDict(strict=False)


class RowProblem(BaseModel):
    """Why one row (CSV: the sheet's row number, header row 1; GeoJSON: the feature's number from 1) failed."""

    row: int
    column: str = Field(description="The column (CSV) or member (GeoJSON) at fault; empty for the row as a whole.")
    message: str
    type: str


class ImportReport(BaseModel):
    """What an import did, row by row."""

    rows: int = Field(description="Rows (features) the file holds.")
    created: int
    updated: int
    unchanged: int
    failed: int = Field(description="Rows with errors: left out with partial, else nothing was stored.")
    errors: list[RowProblem] = Field(description="The first problems found, by row (at most 1,000).")
