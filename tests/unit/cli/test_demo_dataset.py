"""The national dataset: deterministic, valid for the registry's import, and shaped like the real map."""

import re
from collections import Counter

import pytest

from poi_cli.demo import (
    ADMIN1_TO_KATOTTH_OBLAST,
    DEMO_POLICIES,
    FRONTLINE_OBLASTS,
    SERVICES,
    demo_points,
    national_register,
    transliterate,
    ukrainian_name,
)
from poi_registry.bulk.models import FeatureRow
from poi_registry.bulk.service import REGISTRY_CODE
from poi_registry.oblasts.extents import extents
from poi_registry.points.models import PointCreate

KEYS = {
    "name_uk",
    "name_en",
    "category",
    "host_type",
    "lat",
    "lon",
    "katotth",
    "address_uk",
    "settlement",
    "capacity",
    "services",
    "schedule",
    "operator_org",
    "public_phone",
    "contact_phone",
    "visibility",
}


@pytest.fixture(scope="module")
def points() -> list[dict[str, object]]:
    """A mid-sized dataset shared by the shape checks."""
    return demo_points(2000)


def test_same_seed_same_points() -> None:
    """Generation depends only on count and seed."""
    assert demo_points(300) == demo_points(300)
    assert demo_points(300, seed=11) == demo_points(300, seed=11)
    assert demo_points(300, seed=11) != demo_points(300)


def test_count_is_honoured() -> None:
    """Exactly as many points as asked for, including none."""
    assert demo_points(0) == []
    assert len(demo_points(1)) == 1
    assert len(demo_points(2000)) == 2000


def test_every_point_has_exactly_the_registry_fields(points: list[dict[str, object]]) -> None:
    """Every point has all the keys and no others, and the registry accepts it as is."""
    for point in points:
        assert set(point) == KEYS
        PointCreate.model_validate(point)


def test_names_and_address_are_well_formed(points: list[dict[str, object]]) -> None:
    """Names and addresses are Ukrainian, the English names Latin, all within the registry's lengths."""
    for point in points:
        name_uk, name_en, address = point["name_uk"], point["name_en"], point["address_uk"]
        assert isinstance(name_uk, str) and 2 <= len(name_uk) <= 200
        assert re.search(r"[А-ЩЬЮЯЄІЇҐа-щьюяєіїґ]", name_uk)
        assert name_en is None or (isinstance(name_en, str) and 2 <= len(name_en) <= 200)
        assert name_en is None or not re.search(r"[А-Яа-яІіЇїЄєҐґ]", name_en)
        assert isinstance(address, str) and 3 <= len(address) <= 500
        assert re.match(r"^(вул|просп|бульв|пл)\. .+, \d+, .+$", address)


def test_katotth_has_a_real_oblast_code(points: list[dict[str, object]]) -> None:
    """KATOTTH codes are UA and 17 digits, opening with a real oblast code."""
    oblasts = set(ADMIN1_TO_KATOTTH_OBLAST.values())
    for point in points:
        katotth = point["katotth"]
        assert isinstance(katotth, str) and re.fullmatch(r"UA\d{17}", katotth)
        assert katotth[2:4] in oblasts


def test_admin1_mapping_covers_all_regions() -> None:
    """27 GeoNames regions map one-to-one onto the 27 KATOTTH oblast-level codes."""
    assert len(ADMIN1_TO_KATOTTH_OBLAST) == 27
    assert len(set(ADMIN1_TO_KATOTTH_OBLAST.values())) == 27
    assert ADMIN1_TO_KATOTTH_OBLAST["12"] == "80"
    assert ADMIN1_TO_KATOTTH_OBLAST["15"] == "46"
    assert ADMIN1_TO_KATOTTH_OBLAST["07"] == "63"


def test_points_of_one_settlement_share_its_code(points: list[dict[str, object]]) -> None:
    """Outside the cities with special status, one town name means one KATOTTH code."""
    codes: dict[str, set[object]] = {}
    for point in points:
        town = str(point["address_uk"]).rsplit(", ", 1)[-1]
        if not str(point["katotth"]).startswith(("UA80", "UA85")):
            codes.setdefault(town, set()).add(point["katotth"])
    assert codes
    for town, found in codes.items():
        # Two different towns may share a name (there are two Horodoks), never more.
        assert len(found) <= 2, town


def test_coordinates_lie_in_ukraine(points: list[dict[str, object]]) -> None:
    """Every point is inside Ukraine's bounding box, rounded to six decimals."""
    for point in points:
        lat, lon = point["lat"], point["lon"]
        assert isinstance(lat, float) and isinstance(lon, float)
        assert 44 <= lat <= 53 and 22 <= lon <= 41
        assert round(lat, 6) == lat and round(lon, 6) == lon


def test_capacities_in_range_and_state_points_larger(points: list[dict[str, object]]) -> None:
    """Capacities run from 40 to 500, state points holding more people than businesses."""
    by_category: dict[str, list[int]] = {}
    for point in points:
        capacity = point["capacity"]
        assert isinstance(capacity, int) and 40 <= capacity <= 500
        by_category.setdefault(str(point["category"]), []).append(capacity)
    mean = {category: sum(c) / len(c) for category, c in by_category.items()}
    assert mean["state"] > mean["business"]


def test_services_are_known_distinct_and_sorted(points: list[dict[str, object]]) -> None:
    """Services come from the contract's catalogue, once each, sorted."""
    for point in points:
        services = point["services"]
        assert isinstance(services, list) and services
        assert set(services) <= set(SERVICES)
        assert services == sorted(set(services))


def test_state_points_offer_the_core_services(points: list[dict[str, object]]) -> None:
    """Almost every state point offers heat, power, charging, internet, water, first aid and hot drinks."""
    core = {"heat", "electricity", "charging", "internet", "water", "first_aid", "hot_drinks"}
    state = [p for p in points if p["category"] == "state"]
    full = sum(core <= set(p["services"]) for p in state if isinstance(p["services"], list))
    assert full / len(state) > 0.6


def test_category_and_visibility_mix(points: list[dict[str, object]]) -> None:
    """About 55% state, 30% business, 15% essential; mostly public away from the front, mostly not near it."""
    categories = Counter(p["category"] for p in points)
    assert set(categories) == {"state", "business", "essential"}
    assert 0.49 <= categories["state"] / 2000 <= 0.61
    assert 0.25 <= categories["business"] / 2000 <= 0.35
    assert 0.11 <= categories["essential"] / 2000 <= 0.19
    front = [p for p in points if str(p["katotth"])[2:4] in FRONTLINE_OBLASTS]
    rear = [p for p in points if str(p["katotth"])[2:4] not in FRONTLINE_OBLASTS]
    assert 0.1 < len(front) / len(points) < 0.35
    rear_visibility, front_visibility = Counter(p["visibility"] for p in rear), Counter(p["visibility"] for p in front)
    assert rear_visibility["public"] / len(rear) > 0.94 and rear_visibility["hidden"] / len(rear) < 0.02
    assert front_visibility["public"] / len(front) < 0.6 and front_visibility["hidden"] / len(front) > 0.05
    assert set(DEMO_POLICIES) <= {f"UA{o}" for o in FRONTLINE_OBLASTS}


def test_no_points_under_occupation(points: list[dict[str, object]]) -> None:
    """Crimea and Sevastopol hold no points; Luhansk oblast, mostly occupied, very few."""
    oblasts = Counter(str(p["katotth"])[2:4] for p in points)
    assert oblasts["01"] == oblasts["85"] == 0 and oblasts["44"] / len(points) < 0.01


def test_schedules_and_contacts(points: list[dict[str, object]]) -> None:
    """State points open on blackout or always, businesses mostly by weekly hours; phones are E.164."""
    state = Counter(p["schedule"]["kind"] for p in points if p["category"] == "state")  # type: ignore[index]
    business = Counter(p["schedule"]["kind"] for p in points if p["category"] == "business")  # type: ignore[index]
    assert (state["on_blackout"] + state["always"]) / sum(state.values()) > 0.85
    assert business["weekly"] / sum(business.values()) > 0.7
    for point in points:
        assert point["operator_org"]
        for phone in (point["public_phone"], point["contact_phone"]):
            assert phone is None or re.fullmatch(r"\+380\d{9}", str(phone))
    assert sum(p["public_phone"] is not None for p in points) / len(points) > 0.5
    assert {p["host_type"] for p in points} >= {"school", "police", "hospital", "emergency_service", "business"}


def test_the_national_register_has_codes_the_registry_never_gives() -> None:
    """Each point's code is unique, stable and never of the registry's own form (80-000123)."""
    register = national_register(3000)
    codes = [str(p["code"]) for p in register]
    assert len(set(codes)) == len(codes) and not any(REGISTRY_CODE.match(c) for c in codes)
    assert codes[:300] == [str(p["code"]) for p in national_register(3000)][:300]
    for point in register[:500]:
        FeatureRow.model_validate(point)


def test_every_point_lies_in_its_oblast(points: list[dict[str, object]]) -> None:
    """The registry's place check accepts every generated point."""
    check = extents()
    for point in points:
        assert check.misplaced(lat=point["lat"], lon=point["lon"], katotth=point["katotth"]) is None  # type: ignore[arg-type]


def test_kyiv_has_the_most_points(points: list[dict[str, object]]) -> None:
    """Weighting by population puts more points in Kyiv (UA80) than in any oblast."""
    by_oblast = Counter(str(p["katotth"])[2:4] for p in points)
    assert by_oblast.most_common(1)[0][0] == "80"
    assert sum(str(p["address_uk"]).endswith(", Київ") for p in points) == by_oblast["80"]


def test_full_sized_dataset() -> None:
    """The real map's 10,676 points generate, with names mostly unique."""
    big = demo_points(10_676)
    assert len(big) == 10_676
    assert len({p["name_uk"] for p in big}) > 0.95 * len(big)
    assert len({p["katotth"] for p in big}) > 200


def test_ukrainian_name_prefers_ukrainian_spelling() -> None:
    """Of a city's Cyrillic names, the Ukrainian one wins over Russian and Belarusian ones."""
    assert ukrainian_name("Kharkiv", ["Kharkov", "Харков", "Харків", "Харьков"]) == "Харків"
    assert ukrainian_name("Dnipro", ["Днепр", "Днипро", "Дніпро", "Днїпро"]) == "Дніпро"
    assert ukrainian_name("Kramatorsk", ["Краматорск", "Краматорськ", "Краматорьск"]) == "Краматорськ"
    assert ukrainian_name("Lebedyn", ["Lebedin", "Лебедин", "列別金"]) == "Лебедин"
    assert ukrainian_name("Pivnichna Saltivka", []) == "Pivnichna Saltivka"


def test_transliteration_follows_the_national_system() -> None:
    """Romanization follows KMU 2010, including the word-initial forms."""
    assert transliterate("Київ") == "Kyiv"
    assert transliterate("Запоріжжя") == "Zaporizhzhia"
    assert transliterate("Євпаторія") == "Yevpatoriia"
    assert transliterate("Згурівка") == "Zghurivka"
    assert transliterate("Кам'янське") == "Kamianske"
