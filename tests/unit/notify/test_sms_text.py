"""SMS part counting (GSM-7 and UCS-2) and the Latin form."""

import pytest

from poi_notify.sms import text


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("a" * 160, 1),
        ("a" * 161, 2),
        ("a" * 306, 2),
        ("a" * 307, 3),
        ("€" * 80, 1),  # extension characters cost two septets
        ("€" * 81, 2),
        ("я" * 70, 1),
        ("я" * 71, 2),
        ("я" * 201, 3),
        ("я" * 202, 4),
    ],
)
def test_parts(body: str, expected: int) -> None:
    assert text.parts(body) == expected


def test_latin_is_kmu55_and_gsm7() -> None:
    latin = text.latin("Відкрито: Школа №5, вул. Щорса 12 — тепло")
    assert latin == "Vidkryto: Shkola No5, vul. Shchorsa 12 - teplo"
    assert text.is_gsm7(latin)
    assert not text.is_gsm7("Відкрито")
