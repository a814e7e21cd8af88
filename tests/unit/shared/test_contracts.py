"""The contract's helpers: KATOTTH levels and scopes, and the one public visibility policy."""

import re
import uuid
from datetime import UTC, datetime

import pytest

from poi_shared.contracts import (
    KATOTTH_SCOPE_PATTERN,
    HostType,
    PointCategory,
    PointState,
    Schedule,
    Service,
    Visibility,
    katotth_levels,
)
from poi_shared.visibility import public_place


def point(visibility: Visibility) -> PointState:
    return PointState(
        id=uuid.uuid4(),
        code="80-000001",
        version=1,
        name_uk="Пункт незламності — Ліцей №5",
        category=PointCategory.state,
        host_type=HostType.school,
        lat=50.456789,
        lon=30.523456,
        address_uk="вул. Хрещатик, 1, Київ",
        address_en="1 Khreshchatyk St, Kyiv",
        settlement="Київ",
        katotth="UA80000000000093317",
        capacity=120,
        services=[Service.heat],
        schedule=Schedule(),
        visibility=visibility,
        updated_at=datetime.now(UTC),
    )


def test_katotth_levels_are_prefixes_at_level_boundaries() -> None:
    assert katotth_levels("UA32080150010019487") == {"oblast": "UA32", "raion": "UA3208", "hromada": "UA3208015"}


@pytest.mark.parametrize("scope", ["UA32", "UA3208", "UA3208015", "UA3208015001", "UA32080150010019487"])
def test_scopes_at_oblast_level_or_below_are_valid(scope: str) -> None:
    assert re.match(KATOTTH_SCOPE_PATTERN, scope)


@pytest.mark.parametrize("scope", ["", "UA", "UA3", "UA320", "ua32", "UA32 ", "UA320801500100194870"])
def test_scopes_above_oblast_or_between_levels_are_invalid(scope: str) -> None:
    assert not re.match(KATOTTH_SCOPE_PATTERN, scope)


def test_public_points_show_their_exact_place() -> None:
    place = public_place(point(Visibility.public))
    assert place is not None and place.exact
    assert (place.lat, place.lon, place.address_uk) == (50.456789, 30.523456, "вул. Хрещатик, 1, Київ")


def test_coarse_points_show_a_rounded_place_and_only_the_settlement() -> None:
    place = public_place(point(Visibility.coarse))
    assert place is not None and not place.exact
    assert (place.lat, place.lon) == (50.46, 30.52)
    assert place.address_uk == "Київ" and place.address_en is None


def test_hidden_points_have_no_public_place() -> None:
    assert public_place(point(Visibility.hidden)) is None
