"""What every request body and parameter is built from: strict JSON types, safe text, 64-bit integers."""

import re
from typing import Annotated

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, Strict
from pydantic_core import PydanticCustomError

INT64_MAX = 2**63 - 1  # PostgreSQL's bigint: integers from clients never exceed it
MAX_BODY_BYTES = 64 * 1024  # requests are small JSON documents; a route that needs more sets its own limit

# Documented in the OpenAPI schemas (ECMA-262 syntax); the validators below enforce them, and lone surrogates too
# (JSON's "\ud800" decodes to one, and PostgreSQL, like NUL, cannot store it).
LINE_PATTERN = r"^[^\x00-\x1F]*$"
TEXT_PATTERN = r"^[^\x00-\x08\x0B\x0C\x0E-\x1F]*$"
_LINE_REFUSED = re.compile("[\x00-\x1f\ud800-\udfff]")
_TEXT_REFUSED = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff]")  # tab, LF and CR are free text


def _refuse(value: str, refused: re.Pattern[str]) -> str:
    """The value itself, or a validation error naming the first character that cannot be stored or shown."""
    found = refused.search(value)
    if found is None:
        return value
    char, position = found.group(), found.start()
    what = "a lone surrogate" if "\ud800" <= char <= "\udfff" else "a control character"
    raise PydanticCustomError(
        "forbidden_character",
        "must not contain {what} (found U+{code} at position {position})",
        {"what": what, "code": f"{ord(char):04X}", "position": position},
    )


def _single_line(value: str) -> str:
    return _refuse(value, _LINE_REFUSED)


def _free_text(value: str) -> str:
    return _refuse(value, _TEXT_REFUSED)


Line = Annotated[str, AfterValidator(_single_line), Field(json_schema_extra={"pattern": LINE_PATTERN})]
"""One line of text (a name, an address): no control characters, not even tab or newline."""

Text = Annotated[str, AfterValidator(_free_text), Field(json_schema_extra={"pattern": TEXT_PATTERN})]
"""Free text (a note): may hold tabs and line breaks, no other control characters."""

FromString = Strict(False)
"""Marks a field that JSON carries as a string (enum, UUID, date or time) inside a strict RequestModel."""


class RequestModel(BaseModel):
    """Base of every request body: strict JSON types, no unknown fields, no NaN or infinity, trimmed strings.

    Strict means "lat": "50.1" and "capacity": true are refused rather than coerced. Enums, UUIDs, dates and
    times arrive as JSON strings, so their fields are annotated with FromString; strings are Line or Text.
    """

    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False, str_strip_whitespace=True)


_ISO_DATE_START = re.compile(r"^\d{4}-\d{2}-\d{2}")


def _iso_8601(value: object) -> object:
    """Refuse what pydantic would otherwise read as a Unix timestamp ("0.5", "1700000000") in a query parameter."""
    if isinstance(value, str) and not _ISO_DATE_START.match(value):
        raise PydanticCustomError("iso_8601", "must be an ISO 8601 date or time, e.g. 2026-01-19T00:00:00Z")
    return value


Iso8601 = BeforeValidator(_iso_8601)
"""Marks a date or time query parameter: ISO 8601 only (`Annotated[datetime | None, Iso8601, Query(...)]`)."""
