"""HTTP routes for bulk import (CSV, GeoJSON) and the streamed public export."""

from enum import StrEnum
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import StreamingResponse

from poi_registry.bulk import formats, service
from poi_registry.bulk.models import ImportReport, RowProblem
from poi_registry.points.service import NotAllowed
from poi_registry.points.views import Pool, Settings
from poi_shared.auth import CurrentPrincipal, OptionalPrincipal, forbid
from poi_shared.errors import ProblemResponse, problem, reason

router = APIRouter(prefix="/v1/points", tags=["bulk"])

CSV_EXAMPLE = (
    "code,name_uk,category,host_type,lat,lon,katotth,address_uk,settlement,capacity,services,schedule_kind\n"
    "D80-00001,Пункт незламності — Ліцей №5,state,school,50.4501,30.5234,UA80000000000093317,"
    '"вул. Хрещатик, 1, Київ",Київ,120,heat;charging,on_blackout\n'
)
IMPORT_BODY = {
    "required": True,
    "description": "CSV (UTF-8, comma or semicolon separated, header first) or a GeoJSON FeatureCollection of "
    "points; the columns are listed in the README. Rows match points by code.",
    "content": {
        formats.CSV: {"schema": {"type": "string", "format": "binary"}, "example": CSV_EXAMPLE},
        formats.GEOJSON: {"schema": {"type": "object", "required": ["type", "features"]}},
    },
}


class ExportFormat(StrEnum):
    """The export's file format."""

    csv = "csv"
    geojson = "geojson"


@router.post(
    "/import",
    response_model=ImportReport,
    summary="Import points from CSV or GeoJSON",
    openapi_extra={"requestBody": IMPORT_BODY},
    responses={
        413: {"description": "The file holds more bytes or rows than one import may."},
        415: {"description": "The body is neither text/csv nor application/geo+json."},
        422: {"description": "The file cannot be read, or (without partial) a row is invalid: nothing was stored."},
    },
)
async def import_points(
    request: Request,
    pool: Pool,
    settings: Settings,
    caller: CurrentPrincipal,
    partial: Annotated[bool, Query(description="Import the valid rows even if some are invalid.")] = False,
) -> ImportReport | ProblemResponse:
    """Admins, and coordinators inside their area: every row is checked first, then all or nothing (unless
    partial); rows match points by code, and only points that change get a new version and an event."""
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    body = await request.body()
    try:
        return await service.import_points(
            pool,
            body=body,
            media_type=media_type,
            partial=partial,
            caller=caller,
            namespace=settings.namespace,
            max_rows=settings.import_max_rows,
        )
    except NotAllowed as exc:
        raise forbid(str(exc)) from None
    except service.ImportForbidden as exc:
        first = "; ".join(f"row {p.row}: {p.message}" for p in exc.problems[:3])
        return problem(403, reason(403), f"{exc} ({first}); nothing was imported", errors=_row_errors(exc.problems))
    except formats.TooManyRows as exc:
        raise HTTPException(413, str(exc)) from None
    except formats.FileInvalid as exc:
        location = tuple(exc.location.split("."))
        raise RequestValidationError([{"loc": location, "msg": exc.message, "type": exc.error_type}]) from None
    except service.ImportRejected as exc:
        report = exc.report
        first = "; ".join(f"row {e.row} {e.column}: {e.message}".replace("  ", " ") for e in report.errors[:3])
        detail = f"{report.failed} of {report.rows} rows are invalid, so nothing was imported ({first})"
        return problem(422, reason(422), detail, errors=_row_errors(report.errors), report=report.model_dump())


def _row_errors(problems: list[RowProblem]) -> list[dict[str, object]]:
    """Row problems as a problem's errors: located body.row.<n>.<column>, with row and column apart too."""
    return [
        {
            "location": ".".join(part for part in ("body.row", str(p.row), p.column) if part),
            "message": p.message,
            "type": p.type,
            "row": p.row,
            "column": p.column,
        }
        for p in problems
    ]


@router.get(
    "/export",
    response_class=StreamingResponse,
    summary="Export every public point",
    responses={
        200: {
            "description": "Every active point the public may see, through the visibility policy.",
            "content": {formats.CSV: {"schema": {"type": "string"}}, formats.GEOJSON: {"schema": {"type": "object"}}},
        }
    },
)
async def export_points(
    pool: Pool, caller: OptionalPrincipal, format: Annotated[ExportFormat, Query()] = ExportFormat.csv
) -> StreamingResponse:
    """All public points as CSV or GeoJSON (RFC 7946, [lon, lat]), streamed: hidden and retired points never,
    coarse ones at their rounded place; no private fields."""
    if format == ExportFormat.csv:
        stream, media_type, name = service.export_csv(pool), "text/csv; charset=utf-8", "points.csv"
    else:
        stream, media_type, name = service.export_geojson(pool), formats.GEOJSON, "points.geojson"
    headers = {"Content-Disposition": f'attachment; filename="{name}"'}
    return StreamingResponse(stream, media_type=media_type, headers=headers)
