"""SMS lookup without I/O: reading the inbound text, and replies that each fit one SMS part."""

import pytest

from poi_notify.lookup.service import (
    fit,
    help_reply,
    none_open_reply,
    parse,
    unavailable_reply,
    unknown_place_reply,
)
from poi_notify.sms.text import parts
from poi_shared.contracts import Service


@pytest.mark.parametrize(
    ("body", "place", "services"),
    [
        ("Київ Хрещатик 22", "Київ Хрещатик 22", ()),
        ("Kyiv Khreshchatyk 22", "Kyiv Khreshchatyk 22", ()),
        ("Бровари ТЕПЛО", "Бровари", (Service.heat,)),
        ("Lviv HEAT", "Lviv", (Service.heat,)),
        ("зарядка де Одеса", "Одеса", (Service.charging,)),
        ("ЗВ'ЯЗОК Суми вода", "Суми", (Service.internet, Service.water)),
        ("Zviazok Sumy", "Sumy", (Service.internet,)),
        ("  heat  HEAT Heat  ", "", (Service.heat,)),
        ("", "", ()),
    ],
)
def test_place_and_service_words_are_told_apart(body: str, place: str, services: tuple[Service, ...]) -> None:
    request = parse(body)
    assert request.place == place and request.services == services


@pytest.mark.parametrize("language", ["uk", "en"])
def test_every_fixed_reply_is_one_sms_part_even_for_a_long_place(language: str) -> None:
    place = "Новоград-Волинський вулиця Соборності"
    replies = [
        help_reply(language),
        unknown_place_reply(place, language),
        none_open_reply(place, language, (Service.heat, Service.mother_child), 25),
        unavailable_reply(language),
    ]
    assert all(parts(reply) == 1 for reply in replies), [(r, parts(r)) for r in replies]


def test_three_long_points_pack_into_two_one_part_messages() -> None:
    lines = [f"{n}) вул. Героїв Небесної Сотні, {n}0 — Центр надання адміністративних послуг" for n in (1, 2, 3)]
    messages = fit("Відкриті пункти поруч:", lines)
    assert len(messages) == 2 and all(parts(m) == 1 for m in messages), messages
    assert messages[0].startswith("Відкриті пункти поруч:\n1) вул. Героїв Небесної Сотні, 10")
    assert all(f"{n}) вул. Героїв" in "".join(messages) for n in (1, 2, 3)) and "…" in "".join(messages)


def test_short_points_share_one_message() -> None:
    lines = ["1) Ліцей №5, Садова 13", "2) ЦНАП, Миру 2"]
    assert fit("Відкриті пункти поруч:", lines) == ["Відкриті пункти поруч:\n" + "\n".join(lines)]
