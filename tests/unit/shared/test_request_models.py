"""Request bodies: strict JSON types, text without control characters, unknown fields refused."""

from enum import StrEnum
from typing import Annotated
from uuid import UUID

import pytest
from pydantic import Field, ValidationError

from poi_shared.models import FromString, Line, RequestModel, Text


class Colour(StrEnum):
    red = "red"


class Thing(RequestModel):
    name: Line = Field(max_length=50)
    note: Text | None = None
    colour: Annotated[Colour, FromString] = Colour.red
    owner: Annotated[UUID, FromString] | None = None
    weight: float = 1.0
    count: int = 1
    fragile: bool = False


def error_of(data: dict[str, object]) -> dict[str, object]:
    """The single validation error the data gives."""
    with pytest.raises(ValidationError) as caught:
        Thing.model_validate(data)
    errors = caught.value.errors()
    assert len(errors) == 1, errors
    return dict(errors[0])


@pytest.mark.parametrize("char", ["\x00", "\x01", "\x1b", "\x1f", "\t", "\n", "\r"])
def test_a_line_refuses_every_control_character(char: str) -> None:
    error = error_of({"name": f"a{char}b"})
    assert error["loc"] == ("name",) and error["type"] == "forbidden_character"
    assert f"U+{ord(char):04X} at position 1" in str(error["msg"])


@pytest.mark.parametrize("char", ["\x00", "\x07", "\x0b", "\x0c", "\x1f"])
def test_free_text_refuses_control_characters_other_than_tab_and_line_breaks(char: str) -> None:
    assert error_of({"name": "n", "note": f"a{char}b"})["loc"] == ("note",)


def test_free_text_keeps_tabs_and_line_breaks() -> None:
    assert Thing.model_validate({"name": "n", "note": "a\tb\r\nc"}).note == "a\tb\r\nc"


def test_lone_surrogates_are_refused() -> None:
    assert error_of({"name": "n", "note": "a\ud800b"})["loc"] == ("note",)


def test_ordinary_text_passes_trimmed() -> None:
    thing = Thing.model_validate({"name": "  Пункт незламності №5 — «Ліцей» 🔋 ", "note": "ok"})
    assert thing.name == "Пункт незламності №5 — «Ліцей» 🔋"


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"weight": "50.1"}, "weight"),
        ({"weight": True}, "weight"),
        ({"count": True}, "count"),
        ({"count": "1"}, "count"),
        ({"count": 1.0}, "count"),
        ({"fragile": "true"}, "fragile"),
        ({"fragile": 1}, "fragile"),
        ({"name": 5}, "name"),
        ({"weight": float("nan")}, "weight"),
        ({"weight": float("inf")}, "weight"),
        ({"colour": 1}, "colour"),
        ({"extra": 1}, "extra"),
    ],
)
def test_json_types_are_not_coerced(data: dict[str, object], field: str) -> None:
    assert error_of({"name": "n", **data})["loc"] == (field,)


def test_strings_still_carry_enums_and_uuids_and_integers_are_numbers() -> None:
    owner = "7C0E8C4A-1B2C-4D5E-8F90-123456789ABC"
    thing = Thing.model_validate({"name": "n", "colour": "red", "owner": owner, "weight": 2})
    assert thing.colour is Colour.red and thing.owner == UUID(owner) and thing.weight == 2.0
