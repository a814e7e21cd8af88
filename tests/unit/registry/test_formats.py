"""The import and export files: opening hours, CSV reading, neutralised formulas."""

import pytest

from poi_registry.bulk import formats
from poi_shared.contracts import OpeningHours


@pytest.mark.parametrize(
    ("text", "days", "opens", "closes"),
    [
        ("mon-fri 08:00-20:00", ["mon", "tue", "wed", "thu", "fri"], "08:00", "20:00"),
        ("Sat,Sun 9:00 - 18:30", ["sat", "sun"], "09:00", "18:30"),
        ("fri-mon 22:00-06:00", ["fri", "sat", "sun", "mon"], "22:00", "06:00"),
    ],
)
def test_hours_read(text: str, days: list[str], opens: str, closes: str) -> None:
    assert formats.parse_hours(text) == [{"days": days, "opens": opens, "closes": closes}]


@pytest.mark.parametrize("text", ["every day", "mon 8-20", "moon 08:00-20:00", "mon-xyz 08:00-20:00"])
def test_bad_hours_are_named(text: str) -> None:
    with pytest.raises(ValueError, match="not"):
        formats.parse_hours(text)


def test_hours_write_as_they_read() -> None:
    hours = [
        OpeningHours(days=["mon", "tue", "wed", "thu", "fri", "sat"], opens="08:00", closes="21:00"),
        OpeningHours(days=["mon", "wed", "sun"], opens="10:00", closes="16:00"),
    ]
    text = formats.format_hours(hours)
    assert text == "mon-sat 08:00-21:00; mon,wed,sun 10:00-16:00"
    assert [OpeningHours.model_validate(h) for h in formats.parse_hours(text)] == hours


def test_csv_rows_number_like_a_sheet_and_pack_lists() -> None:
    body = (
        "code,name_uk,category,lat,lon,katotth,address_uk,settlement,capacity,services,schedule_kind\r\n"
        '\r\nA-1,Пункт,state,50.1,30.2,UA80000000000093317,"вул. Х, 1",Київ,10,heat; charging ,always\r\n'
    ).encode()
    file = formats.read_csv(body, max_rows=10)
    assert [r.number for r in file.rows] == [3] and file.columns == {"services", "schedule_kind"}
    assert file.rows[0].values["services"] == ["heat", "charging"]
    assert file.rows[0].values["schedule"] == {"kind": "always"}


def test_too_many_rows_stop_reading_early() -> None:
    body = ("code,name_uk,category,lat,lon,katotth,address_uk,settlement,capacity\n" + "x\n" * 11).encode()
    with pytest.raises(formats.TooManyRows, match="at most 10 rows"):
        formats.read_csv(body, max_rows=10)


@pytest.mark.parametrize(("value", "cell"), [("=HYPERLINK(1)", "'=HYPERLINK(1)"), ("@SUM", "'@SUM"), ("Київ", "Київ")])
def test_exported_text_never_starts_a_formula(value: str, cell: str) -> None:
    assert formats.csv_cell("name_uk", value) == cell
    assert formats.csv_cell("public_phone", "+380441234567") == "+380441234567"
