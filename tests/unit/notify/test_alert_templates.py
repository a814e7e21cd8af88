"""Alert texts: one UCS-2 SMS where possible, never over three parts, truncated where a person can still use it."""

import pytest

from poi_cli.demo import national_register
from poi_notify.alerts import templates
from poi_notify.alerts.templates import CLOSED, FULL, LOW_FUEL, OPENED, PLACES_AGAIN, STALE, OpsNews, PointNews
from poi_notify.sms import text

LYCEUM = PointNews(OPENED, "Пункт незламності — Ліцей №5, Київ", "вул. Хрещатик, 1, Київ", "Київ", ("heat", "charging"))
LONG = PointNews(
    OPENED,
    "Пункт незламності — Центр надання адміністративних послуг Шевченківського району, Київ",
    "просп. Берестейський (Перемоги), 128/2, Шевченківський район, Київ",
    "Київ",
    ("heat", "charging", "water", "internet"),
)


def test_one_point_near_you_is_one_sms_with_its_address_and_services() -> None:
    body = templates.alert_body("uk", [], [LYCEUM])
    assert body == "Відкрито поруч: Ліцей №5, вул. Хрещатик, 1, Київ (тепло, зарядка)"
    assert text.parts(body) == 1


def test_a_long_name_is_cut_at_a_word_and_the_street_and_house_number_kept() -> None:
    body = templates.alert_body("uk", [], [LONG])
    assert text.parts(body) == 1, body
    assert "просп. Берестейський (Перемоги), 128/2" in body and "…" in body, body
    assert "Шевченківський район" not in body  # what follows the house number goes first


def test_several_nearby_points_name_the_nearest_and_count_the_rest() -> None:
    body = templates.alert_body("uk", [], [LYCEUM, LONG, LONG])
    assert body.startswith("Відкрито поруч: Ліцей №5") and body.endswith("ще 2 поруч"), body
    assert text.parts(body) == 1


@pytest.mark.parametrize(
    ("change", "word"), [(OPENED, "ВІДКРИТО"), (CLOSED, "ЗАЧИНЕНО"), (FULL, "НЕМАЄ МІСЦЬ"), (PLACES_AGAIN, "Є МІСЦЯ")]
)
def test_each_change_of_a_followed_point(change: str, word: str) -> None:
    body = templates.alert_body("uk", [PointNews(change, LYCEUM.name, LYCEUM.address, "Київ")], [])
    assert body == f"{word}: Ліцей №5, вул. Хрещатик, 1, Київ"


def test_english_words_and_names() -> None:
    news = PointNews(FULL, "Invincibility Point — Lyceum No. 5, Kyiv", "1 Khreshchatyk St, Kyiv", "Київ")
    assert templates.alert_body("en", [news], []) == "FULL: Lyceum No. 5, 1 Khreshchatyk St, Kyiv"


def test_merged_changes_put_closings_first_and_stay_within_three_parts() -> None:
    points = [
        PointNews(OPENED, LONG.name, LONG.address, "Київ"),
        PointNews(CLOSED, LYCEUM.name, LYCEUM.address, "Київ"),
        PointNews(FULL, LONG.name, LONG.address, "Київ"),
        PointNews(OPENED, LYCEUM.name, LYCEUM.address, "Київ"),
    ]
    body = templates.alert_body("uk", points, [LONG, LYCEUM])
    assert body.startswith("ЗАЧИНЕНО: Ліцей №5"), body
    assert 1 < text.parts(body) <= text.MAX_PARTS


def test_every_point_of_the_national_dataset_fits_one_sms_alone_and_three_with_two_more() -> None:
    points = national_register(3000)
    for i, p in enumerate(points):
        news = PointNews(OPENED, str(p["name_uk"]), str(p["address_uk"]), str(p["settlement"]), tuple(p["services"]))  # type: ignore[arg-type]
        alone = templates.alert_body("uk", [], [news])
        assert text.parts(alone) == 1, alone
        assert str(p["address_uk"]).split(",")[0][:10] in alone, alone  # the street is never cut away
        other = points[(i + 1) % len(points)]
        merged = templates.alert_body(
            "uk",
            [PointNews(CLOSED, str(other["name_uk"]), str(other["address_uk"]), str(other["settlement"]))],
            [news, news],
        )
        assert text.parts(merged) <= text.MAX_PARTS
        assert text.parts(text.latin(merged)) <= text.MAX_PARTS


def test_ops_messages_name_points_by_code() -> None:
    items = [
        OpsNews(STALE, "D80-00012", "Пункт незламності — Ліцей №5, Київ"),
        OpsNews(LOW_FUEL, "D80-00013", None, 2.5),
    ]
    assert templates.ops_body("uk", items[:1]) == "ПН D80-00012 Ліцей №5, Київ: немає звітів"
    # Two do not fit one SMS with names: the codes stay, the names go.
    assert templates.ops_body("uk", items) == "ПН D80-00012: немає звітів; ПН D80-00013: мало пального (2.5 год)"
    many = templates.ops_body("en", [OpsNews(STALE, f"D80-{i:05d}", LONG.name) for i in range(30)])
    assert text.parts(many) == 1 and many.endswith("+26"), many


@pytest.mark.parametrize(
    ("value", "limit", "expected"),
    [
        ("Центр надання адміністративних послуг", 20, "Центр надання…"),
        ("Ліцей №5", 20, "Ліцей №5"),
        ("Надзвичайнодовгеслово", 10, "Надзвичай…"),
    ],
)
def test_cut_at_a_word_boundary(value: str, limit: int, expected: str) -> None:
    assert templates.cut(value, limit) == expected


def test_short_name_drops_the_generic_prefix_and_the_settlement() -> None:
    assert templates.short_name("Пункт незламності — Ліцей №5, Київ", "вул. Хрещатик, 1, Київ") == "Ліцей №5"
    assert templates.short_name("Пункт незламності ДСНС", "вул. Січова, 3, Умань") == "Пункт незламності ДСНС"
    assert templates.short_name("Укриття, Київ", "Київ", "Київ") == "Укриття"
