"""The CSV and GeoJSON files the registry imports and exports: their columns, and rows to and from them."""

import csv
import io
import json
import re
from dataclasses import dataclass, field
from typing import Any

from poi_registry.points.models import PublicPoint
from poi_shared.contracts import OpeningHours, Weekday

CSV = "text/csv"
GEOJSON = "application/geo+json"

REQUIRED_COLUMNS = ("code", "name_uk", "category", "lat", "lon", "katotth", "address_uk", "settlement", "capacity")
OPTIONAL_COLUMNS = (
    "name_en",
    "host_type",
    "address_en",
    "services",
    "schedule_kind",
    "schedule_hours",
    "schedule_note",
    "operator_org",
    "public_phone",
    "contact_phone",
    "visibility",
)
IMPORT_COLUMNS = REQUIRED_COLUMNS + OPTIONAL_COLUMNS
"""The import file's columns, in the order an import template lists them."""

SCHEDULE_COLUMNS = {"kind": "schedule_kind", "hours": "schedule_hours", "note": "schedule_note"}
EXPORT_COLUMNS = (
    "id",
    "code",
    "version",
    "name_uk",
    "name_en",
    "category",
    "host_type",
    "lat",
    "lon",
    "exact_location",
    "address_uk",
    "address_en",
    "settlement",
    "katotth",
    "capacity",
    "services",
    "schedule_kind",
    "schedule_hours",
    "schedule_note",
    "operator_org",
    "public_phone",
    "updated_at",
)
"""The public export's columns."""

LIST_SEPARATOR = re.compile(r"\s*[;,]\s*")
DAYS = [d.value for d in Weekday]
_HOURS = re.compile(r"^(?P<days>[a-z,\- ]+?)\s+(?P<opens>\d{1,2}:\d{2})\s*-\s*(?P<closes>\d{1,2}:\d{2})$")
# Spreadsheets run a cell that starts like a formula; an exported text never does (OWASP's CSV injection advice).
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_TEXT_COLUMNS = {"name_uk", "name_en", "address_uk", "address_en", "settlement", "schedule_note", "operator_org"}


class FileInvalid(Exception):
    """The file as a whole cannot be read: where (e.g. body.header) and why."""

    def __init__(self, location: str, message: str, error_type: str) -> None:
        super().__init__(message)
        self.location, self.message, self.error_type = location, message, error_type


class TooManyRows(Exception):
    """The file holds more rows than one import may."""


@dataclass
class RawRow:
    """One row of the file: its number, its values by field, and problems found while reading it."""

    number: int
    values: dict[str, Any]
    problems: list[tuple[str, str, str]] = field(default_factory=list)  # (column, message, type)


@dataclass
class ImportFile:
    """The rows of an import file and the optional columns it holds (others keep stored values on update)."""

    rows: list[RawRow]
    columns: set[str]


def parse_hours(text: str) -> list[dict[str, Any]]:
    """'mon-fri 08:00-20:00; sat 10:00-16:00' as opening hours; ValueError naming what is wrong."""
    hours = []
    for part in (p.strip() for p in text.split(";")):
        if not part:
            continue
        match = _HOURS.match(part.lower())
        if match is None:
            raise ValueError(f"{part!r} is not like 'mon-fri 08:00-20:00'")
        days: list[str] = []
        for item in (i.strip() for i in match["days"].split(",")):
            first, _, last = item.partition("-")
            if first not in DAYS or (last and last not in DAYS):
                raise ValueError(f"{item!r} is not a day or a range of days (mon, tue, … sun; mon-fri)")
            start, end = DAYS.index(first), DAYS.index(last or first)
            # fri-mon runs over the weekend
            days += DAYS[start : end + 1] if start <= end else DAYS[start:] + DAYS[: end + 1]
        hours.append({"days": days, "opens": match["opens"].zfill(5), "closes": match["closes"].zfill(5)})
    return hours


def format_hours(hours: list[OpeningHours]) -> str:
    """Opening hours as the schedule_hours column writes them."""
    return "; ".join(f"{_format_days([d.value for d in h.days])} {h.opens:%H:%M}-{h.closes:%H:%M}" for h in hours)


def _format_days(days: list[str]) -> str:
    """Days with runs of three or more as ranges: mon-fri,sun."""
    indexes = sorted({DAYS.index(d) for d in days})
    runs: list[list[int]] = []
    for i in indexes:
        if runs and runs[-1][-1] == i - 1:
            runs[-1].append(i)
        else:
            runs.append([i])
    parts = [f"{DAYS[r[0]]}-{DAYS[r[-1]]}" if len(r) >= 3 else ",".join(DAYS[i] for i in r) for r in runs]
    return ",".join(parts)


def read_csv(body: bytes, *, max_rows: int) -> ImportFile:
    """The rows of a UTF-8 CSV file (comma or semicolon separated, header first); rows number from 2 like a sheet."""
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = body.count(b"\n", 0, exc.start) + 1
        raise FileInvalid(
            "body",
            f"the file is not UTF-8 (byte {exc.start}, line {line}); save it as CSV UTF-8",
            "encoding",
        ) from None
    header_line = text.split("\n", 1)[0]
    delimiter = ";" if header_line.count(";") > header_line.count(",") else ","
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    try:
        header = [name.strip().lower() for name in next(reader)]
    except StopIteration:
        raise FileInvalid("body", "the file is empty; it needs a header row and a row per point", "empty") from None
    except csv.Error as exc:
        raise FileInvalid("body.row.1", f"row 1 (the header): {exc}", "csv") from None
    _check_header(header, location="body.header")
    rows: list[RawRow] = []
    number = 1
    while True:
        number += 1
        try:
            cells = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            # Past a broken quote the rest of the file cannot be told apart into rows.
            raise FileInvalid(f"body.row.{number}", f"row {number}: {exc}", "csv") from None
        if not cells:
            continue
        if len(rows) >= max_rows:
            raise TooManyRows(f"an import holds at most {max_rows} rows; split the file")
        row = RawRow(number, {})
        if len(cells) != len(header):
            row.problems.append(("", f"has {len(cells)} cells, the header {len(header)}", "row_length"))
        else:
            row.values = _csv_values(dict(zip(header, cells, strict=True)), row)
        rows.append(row)
    return ImportFile(rows, set(header) & set(OPTIONAL_COLUMNS))


def _check_header(header: list[str], *, location: str) -> None:
    missing = [c for c in REQUIRED_COLUMNS if c not in header]
    unknown = [c for c in header if c not in IMPORT_COLUMNS]
    repeated = sorted({c for c in header if header.count(c) > 1})
    problems = []
    if missing:
        problems.append(f"missing columns: {', '.join(missing)}")
    if unknown:
        problems.append(f"unknown columns: {', '.join(unknown)} (the columns are {', '.join(IMPORT_COLUMNS)})")
    if repeated:
        problems.append(f"repeated columns: {', '.join(repeated)}")
    if problems:
        raise FileInvalid(location, "; ".join(problems), "columns")


def _csv_values(cells: dict[str, str], row: RawRow) -> dict[str, Any]:
    """A CSV row's cells as field values: empty cells are absent values, lists and schedules unpacked."""
    values: dict[str, Any] = {}
    for name, cell in cells.items():
        cell = cell.strip()
        if not cell or name in SCHEDULE_COLUMNS.values():
            continue
        values[name] = LIST_SEPARATOR.split(cell) if name == "services" else cell
    if any(c in cells for c in SCHEDULE_COLUMNS.values()):
        schedule: dict[str, Any] = {}
        if kind := cells.get("schedule_kind", "").strip():
            schedule["kind"] = kind
        if note := cells.get("schedule_note", "").strip():
            schedule["note"] = note
        if hours := cells.get("schedule_hours", "").strip():
            try:
                schedule["hours"] = parse_hours(hours)
            except ValueError as exc:
                row.problems.append(("schedule_hours", str(exc), "hours_format"))
        values["schedule"] = schedule
    return values


def read_geojson(body: bytes, *, max_rows: int) -> ImportFile:
    """The features of a GeoJSON FeatureCollection of points as rows, numbered from 1 in file order."""
    try:
        document = json.loads(body)
    except UnicodeDecodeError as exc:
        raise FileInvalid("body", f"the file is not UTF-8 (byte {exc.start})", "encoding") from None
    except json.JSONDecodeError as exc:
        where = f"line {exc.lineno}, column {exc.colno}"
        raise FileInvalid("body", f"not valid JSON: {exc.msg} at {where}", "json") from None
    if not isinstance(document, dict) or document.get("type") != "FeatureCollection":
        raise FileInvalid("body.type", "the file must be a GeoJSON FeatureCollection", "geojson")
    features = document.get("features")
    if not isinstance(features, list):
        raise FileInvalid("body.features", "a FeatureCollection holds a list of features", "geojson")
    if len(features) > max_rows:
        raise TooManyRows(f"an import holds at most {max_rows} features; split the file")
    rows, columns = [], set()
    for number, feature in enumerate(features, start=1):
        row = RawRow(number, {})
        rows.append(row)
        if not isinstance(feature, dict) or feature.get("type") != "Feature":
            row.problems.append(("", "is not a GeoJSON Feature", "geojson"))
            continue
        properties = feature.get("properties")
        if not isinstance(properties, dict):
            row.problems.append(("properties", "a feature needs its properties as an object", "geojson"))
            continue
        geometry = feature.get("geometry")
        coordinates = geometry.get("coordinates") if isinstance(geometry, dict) else None
        if (
            not isinstance(geometry, dict)
            or geometry.get("type") != "Point"
            or not isinstance(coordinates, list)
            or len(coordinates) not in (2, 3)
        ):
            row.problems.append(("geometry", "a point's geometry is {type: Point, coordinates: [lon, lat]}", "geojson"))
            continue
        unknown = sorted(set(properties) - set(_GEOJSON_PROPERTIES))
        if unknown:
            row.problems.append(("properties", f"unknown properties: {', '.join(unknown)}", "extra_forbidden"))
            continue
        row.values = {k: v for k, v in properties.items() if v is not None}
        row.values.update(lon=coordinates[0], lat=coordinates[1])
        columns |= set(properties)
    return ImportFile(rows, columns & set(_GEOJSON_OPTIONAL))


# GeoJSON features carry the API's fields as properties (services a list, schedule an object); lat/lon are the geometry.
_GEOJSON_PROPERTIES = [c for c in IMPORT_COLUMNS if c not in ("lat", "lon", *SCHEDULE_COLUMNS.values())] + ["schedule"]
_GEOJSON_OPTIONAL = [c for c in OPTIONAL_COLUMNS if c not in SCHEDULE_COLUMNS.values()] + ["schedule"]


def import_column(media_type: str, location: tuple[str | int, ...]) -> str:
    """The file column (CSV) or member (GeoJSON) a validation error's location points at."""
    name = str(location[0]) if location else ""
    if media_type == CSV:
        if name == "schedule":
            return SCHEDULE_COLUMNS.get(str(location[1]), "schedule_kind") if len(location) > 1 else "schedule_kind"
        return name
    if name in ("lat", "lon"):
        return "geometry.coordinates"
    return ".".join(["properties", *(str(p) for p in location)]) if name else "properties"


def csv_cell(name: str, value: Any) -> str:
    """A value as an export cell."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    text = str(value)
    if name in _TEXT_COLUMNS and text.startswith(_FORMULA_START):
        return "'" + text
    return text


def csv_line(values: list[str]) -> bytes:
    """One CSV record (RFC 4180 quoting, CRLF)."""
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\r\n").writerow(values)
    return buffer.getvalue().encode()


def export_record(point: PublicPoint) -> list[str]:
    """A public point as the export's CSV cells."""
    flat = {
        **point.model_dump(mode="json"),
        "services": ";".join(point.services),
        "schedule_kind": point.schedule.kind.value,
        "schedule_hours": format_hours(point.schedule.hours),
        "schedule_note": point.schedule.note,
    }
    return [csv_cell(name, flat.get(name)) for name in EXPORT_COLUMNS]


def geojson_feature(point: PublicPoint) -> dict[str, Any]:
    """A public point as a GeoJSON feature, [lon, lat] as RFC 7946 orders them."""
    properties = point.model_dump(mode="json", exclude={"lat", "lon", "view"})
    return {
        "type": "Feature",
        "id": properties["id"],
        "geometry": {"type": "Point", "coordinates": [point.lon, point.lat]},
        "properties": properties,
    }
