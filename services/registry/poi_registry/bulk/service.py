"""Bulk import (every row validated first; all or nothing unless partial; idempotent) and streamed export."""

import asyncio
import json
import re
from collections import defaultdict
from collections.abc import AsyncIterator
from dataclasses import dataclass
from enum import Enum
from typing import Any

import asyncpg
from pydantic import BaseModel, ValidationError

from poi_registry import data, events
from poi_registry.bulk import formats
from poi_registry.bulk.models import CsvRow, FeatureRow, ImportReport, RowProblem
from poi_registry.oblasts.extents import extents
from poi_registry.points.models import PublicPoint
from poi_registry.points.service import (
    NotAllowed,
    differences,
    history_entry,
    public_view,
    registration_changes,
    stored_point,
)
from poi_shared import db
from poi_shared.auth import Principal, Role
from poi_shared.contracts import POINT_REGISTERED, POINT_UPDATED
from poi_shared.envelope import OutgoingMessage
from poi_shared.outbox import committed, enqueue_many

MAX_LISTED_ERRORS = 1000
REGISTRY_CODE = re.compile(r"^\d{2}-\d{6,}$")
"""Codes the registry gives to points created through the API (oblast and sequence); imports choose others."""
IMPORT_REASON = "import"
# Import fields always in a file; the optional ones are written on update only when the file holds them.
ALWAYS_WRITTEN = tuple(c for c in formats.REQUIRED_COLUMNS if c != "code")


class ImportForbidden(Exception):
    """Rows lie outside the caller's area: nothing was stored, whatever partial says."""

    def __init__(self, problems: list[RowProblem]) -> None:
        super().__init__(f"{len(problems)} rows lie outside your area")
        self.problems = problems


class ImportRejected(Exception):
    """Some rows are invalid and the import was all or nothing: nothing was stored."""

    def __init__(self, report: ImportReport) -> None:
        super().__init__(f"{report.failed} of {report.rows} rows are invalid")
        self.report = report


@dataclass
class Prepared:
    """An import file read and validated: what to stage, the problems by row, the fields it writes."""

    rows: int
    staged: list[tuple[Any, ...]]
    codes: dict[int, str]
    problems: dict[int, list[RowProblem]]
    forbidden: list[RowProblem]
    written: list[str]


def prepare(body: bytes, *, media_type: str, max_rows: int, caller: Principal) -> Prepared:
    """Read and validate every row (no database needed); raises formats.FileInvalid or formats.TooManyRows."""
    model: type[FeatureRow]
    if media_type == formats.CSV:
        file, model = formats.read_csv(body, max_rows=max_rows), CsvRow
    else:
        file, model = formats.read_geojson(body, max_rows=max_rows), FeatureRow
    problems: dict[int, list[RowProblem]] = defaultdict(list)
    forbidden: list[RowProblem] = []
    staged: list[tuple[Any, ...]] = []
    codes: dict[int, str] = {}
    first_row: dict[str, int] = {}
    place = extents()

    def fail(row: int, column: str, message: str, error_type: str) -> None:
        problems[row].append(RowProblem(row=row, column=column, message=message, type=error_type))

    for raw in file.rows:
        for column, message, error_type in raw.problems:
            fail(raw.number, column, message, error_type)
        if raw.problems:
            continue
        try:
            point = model.model_validate(raw.values)
        except ValidationError as exc:
            for error in exc.errors(include_url=False):
                column = formats.import_column(media_type, error["loc"])
                fail(raw.number, column, error["msg"], error["type"])
            continue
        if point.code in first_row:
            fail(raw.number, "code", f"code {point.code} is also on row {first_row[point.code]}", "duplicate_code")
            continue
        first_row[point.code] = raw.number
        if not caller.coordinates(point.katotth):
            message = f"your account may not import points in {point.katotth}"
            forbidden.append(RowProblem(row=raw.number, column="katotth", message=message, type="forbidden"))
            continue
        misplaced = place.misplaced(lat=point.lat, lon=point.lon, katotth=point.katotth)
        if misplaced is not None:
            for column in ("lat", "lon") if media_type == formats.CSV else ("geometry.coordinates",):
                fail(raw.number, column, misplaced, "outside_oblast")
            continue
        staged.append((raw.number, point.code, *(_column(getattr(point, name)) for name in data.POINT_FIELDS)))
        codes[raw.number] = point.code
    written = [*ALWAYS_WRITTEN, *(c for c in data.POINT_FIELDS if c in _fields_of(file.columns))]
    fields = sorted(set(written), key=data.POINT_FIELDS.index)
    return Prepared(len(file.rows), staged, codes, dict(problems), forbidden, fields)


def _column(value: Any) -> Any:
    """A validated field as its staging column takes it (cheaper than dumping the whole row to JSON first)."""
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, list):
        return [item.value if isinstance(item, Enum) else item for item in value]
    if isinstance(value, BaseModel):
        return value.model_dump_json()
    return value


def _fields_of(columns: set[str]) -> set[str]:
    """The point fields a file's optional columns write (the schedule columns write the schedule)."""
    return {"schedule" if c in formats.SCHEDULE_COLUMNS.values() else c for c in columns}


def _report(prepared: Prepared, *, stored: bool, created: int = 0, updated: int = 0) -> ImportReport:
    """The row-by-row report; when nothing was stored, no row counts as unchanged."""
    failed = len(prepared.problems)
    listed = [p for row in sorted(prepared.problems) for p in prepared.problems[row]][:MAX_LISTED_ERRORS]
    unchanged = prepared.rows - failed - created - updated if stored else 0
    return ImportReport(
        rows=prepared.rows, created=created, updated=updated, unchanged=unchanged, failed=failed, errors=listed
    )


async def import_points(
    pool: asyncpg.Pool,
    *,
    body: bytes,
    media_type: str,
    partial: bool,
    caller: Principal,
    namespace: str,
    max_rows: int,
) -> ImportReport:
    """Import a CSV or GeoJSON file: rows match points by code; only changed points get a version and an event.

    Every row is checked before anything is stored. A row outside the caller's area stores nothing
    (ImportForbidden). Unless partial, one invalid row means nothing is stored (ImportRejected); with partial,
    the valid rows are imported and the report lists the others.
    """
    if not caller.has(Role.admin, Role.coordinator):
        raise NotAllowed("only admins and coordinators (inside their area) may import points")
    # Reading and validating thousands of rows is CPU work: off the event loop, so other requests keep flowing.
    prepared = await asyncio.to_thread(prepare, body, media_type=media_type, max_rows=max_rows, caller=caller)
    async with db.connection(pool) as conn, conn.transaction():
        await data.begin_import(conn)
        await data.stage_import(conn, prepared.staged)
        matched = set()
        for match in await data.staged_matches(conn):
            matched.add(match["row_no"])
            if not caller.coordinates(match["katotth"]):
                prepared.forbidden.append(
                    RowProblem(
                        row=match["row_no"],
                        column="code",
                        message=f"point {prepared.codes[match['row_no']]} lies in {match['katotth']}, "
                        "outside your area",
                        type="forbidden",
                    )
                )
        if prepared.forbidden:
            raise ImportForbidden(sorted(prepared.forbidden, key=lambda p: p.row)[:MAX_LISTED_ERRORS])
        for row, code in prepared.codes.items():
            if row not in matched and REGISTRY_CODE.match(code):
                prepared.problems.setdefault(row, []).append(
                    RowProblem(
                        row=row,
                        column="code",
                        message=f"no point has code {code}, and codes like 80-000123 are given by the registry; "
                        "choose another code for a new point",
                        type="registry_code",
                    )
                )
        if prepared.problems and not partial:
            raise ImportRejected(_report(prepared, stored=False))
        if prepared.problems:
            await data.unstage(conn, [row for row in prepared.problems if row in prepared.codes])
        before, after = await data.update_staged(conn, columns=prepared.written)
        created = await data.insert_staged(conn)
        # Thousands of events and history entries are CPU work too: made off the event loop, written in bulk.
        messages, entries = await asyncio.to_thread(
            _changes, before, after, created, written=prepared.written, changed_by=caller.subject, namespace=namespace
        )
        await enqueue_many(conn, messages)
        await data.insert_history(conn, entries)
    committed()
    return _report(prepared, stored=True, created=len(created), updated=len(after))


def _changes(
    before: list[asyncpg.Record],
    after: list[asyncpg.Record],
    created: list[asyncpg.Record],
    *,
    written: list[str],
    changed_by: str,
    namespace: str,
) -> tuple[list[OutgoingMessage], list[tuple[Any, ...]]]:
    """The events and history entries of an import's changes: updated points first, then the new ones."""
    messages, entries = [], []
    compared = {*written, "effective_visibility"}
    for old, new in zip(before, after, strict=True):
        point = stored_point(new)
        diff = differences(stored_point(old), point, compared)
        entries.append(
            history_entry(point, action="updated", changed_by=changed_by, changes=diff, reason=IMPORT_REASON)
        )
        messages.append(events.message(namespace=namespace, event_type=POINT_UPDATED, point=point))
    for row in created:
        point = stored_point(row)
        changes = registration_changes(point)
        entries.append(
            history_entry(point, action="registered", changed_by=changed_by, changes=changes, reason=IMPORT_REASON)
        )
        messages.append(events.message(namespace=namespace, event_type=POINT_REGISTERED, point=point))
    return messages, entries


async def public_points(pool: asyncpg.Pool) -> AsyncIterator[PublicPoint]:
    """Every active point the public may see, in its public view, from a server-side cursor."""
    async with db.connection(pool) as conn, conn.transaction(isolation="repeatable_read", readonly=True):
        async for row in data.public_points(conn, prefetch=500):
            yield public_view(stored_point(row))


async def export_csv(pool: asyncpg.Pool) -> AsyncIterator[bytes]:
    """The public points as CSV, header first, streamed."""
    yield formats.csv_line(list(formats.EXPORT_COLUMNS))
    async for point in public_points(pool):
        yield formats.csv_line(formats.export_record(point))


async def export_geojson(pool: asyncpg.Pool) -> AsyncIterator[bytes]:
    """The public points as a GeoJSON FeatureCollection, streamed feature by feature."""
    yield b'{"type": "FeatureCollection", "features": ['
    separator = b""
    async for point in public_points(pool):
        yield separator + json.dumps(formats.geojson_feature(point), ensure_ascii=False).encode()
        separator = b","
    yield b"]}\n"
