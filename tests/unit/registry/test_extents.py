"""The oblast extents: generated from GeoNames as committed, and strict where it matters."""

import json

import pytest

from poi_cli.extents import convex_hull, oblast_extents, render
from poi_registry.oblasts.extents import EXTENTS_FILE, extents, parse_extents

KYIV_CITY = "UA80000000000093317"


def test_the_committed_file_is_what_the_generator_makes() -> None:
    """Regenerate with `poi oblast-extents` when this fails."""
    assert EXTENTS_FILE.read_text(encoding="utf-8") == render(oblast_extents())


def test_every_oblast_level_unit_has_an_extent() -> None:
    document = json.loads(EXTENTS_FILE.read_text(encoding="utf-8"))
    assert len(document["oblasts"]) == 27 and document["margin_km"] == 20
    assert all(len(o["hull"]) >= 3 and o["settlements"] >= 20 for o in document["oblasts"].values())


@pytest.mark.parametrize(
    ("lat", "lon", "katotth"),
    [
        (50.4501, 30.5234, KYIV_CITY),  # Khreshchatyk
        (50.45, 30.52, "UA32000000000000001"),  # Kyiv lies inside Kyiv oblast's extent
        (49.8397, 24.0297, "UA46000000000000001"),  # Lviv
        (48.2915, 25.9403, "UA73000000000000001"),  # Chernivtsi
        (46.4825, 30.7233, "UA51000000000000001"),  # Odesa
        (51.4982, 31.2893, "UA74000000000000001"),  # Chernihiv
        (48.6208, 22.2879, "UA21000000000000001"),  # Uzhhorod
        (47.0971, 37.5434, "UA14000000000000001"),  # Mariupol
    ],
)
def test_real_places_lie_in_their_oblast(lat: float, lon: float, katotth: str) -> None:
    assert extents().misplaced(lat=lat, lon=lon, katotth=katotth) is None


@pytest.mark.parametrize(
    ("lat", "lon", "katotth", "words"),
    [
        (0.0, 0.0, KYIV_CITY, "outside Kyiv city (UA80)"),
        (49.8397, 24.0297, "UA32000000000000001", "outside Kyiv oblast (UA32)"),  # Lviv coded Kyiv oblast
        (50.4501, 30.5234, "UA46000000000000001", "outside Lviv oblast (UA46)"),  # Kyiv coded Lviv oblast
        (46.4825, 30.7233, "UA48000000000000001", "outside Mykolaiv oblast (UA48)"),  # Odesa coded Mykolaiv oblast
        (52.52, 13.405, KYIV_CITY, "outside Kyiv city"),  # Berlin: foreign points are out of scope for now
        (50.45, 30.52, "UA99000000000000001", "not a KATOTTH oblast code"),
    ],
)
def test_places_outside_their_oblast_are_named(lat: float, lon: float, katotth: str, words: str) -> None:
    reason = extents().misplaced(lat=lat, lon=lon, katotth=katotth)
    assert reason is not None and words in reason


def test_the_margin_is_about_twenty_km() -> None:
    square = parse_extents(
        {
            "margin_km": 20,
            "oblasts": {"UA00": {"name_uk": "x", "name_en": "X", "hull": [[30, 50], [31, 50], [31, 51], [30, 51]]}},
        }
    )
    code = "UA00000000000000001"
    assert square.misplaced(lat=50.5, lon=30.5, katotth=code) is None
    assert square.misplaced(lat=51.15, lon=30.5, katotth=code) is None  # ~17 km north of the edge
    assert square.misplaced(lat=51.25, lon=30.5, katotth=code) is not None  # ~28 km
    assert square.misplaced(lat=50.5, lon=31.4, katotth=code) is not None  # ~28 km east at this latitude


def test_convex_hull() -> None:
    points = [(0.0, 0.0), (2.0, 0.0), (1.0, 1.0), (2.0, 2.0), (0.0, 2.0), (1.0, 0.5)]
    assert convex_hull(points) == [(0.0, 0.0), (2.0, 0.0), (2.0, 2.0), (0.0, 2.0)]
