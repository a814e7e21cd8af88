"""The read model keeps the newest version of each point and status and answers nearest queries."""

import uuid
from datetime import UTC, datetime

from poi_search.catalog.readmodel import ReadModel, haversine_m
from poi_shared.contracts import (
    HostType,
    OpenState,
    PointCategory,
    PointState,
    Schedule,
    Service,
    StatusState,
    Visibility,
)


def point(lat: float, lon: float, **changes: object) -> PointState:
    base = {
        "id": uuid.uuid4(),
        "code": "80-000001",
        "version": 1,
        "name_uk": "Пункт",
        "category": PointCategory.state,
        "host_type": HostType.school,
        "lat": lat,
        "lon": lon,
        "katotth": "UA80000000000093317",
        "address_uk": "вул. Хрещатик, 1",
        "settlement": "Київ",
        "capacity": 100,
        "services": [Service.heat, Service.charging],
        "schedule": Schedule(),
        "visibility": Visibility.public,
        "updated_at": datetime.now(UTC),
    }
    return PointState.model_validate({**base, **changes})


def test_older_and_repeated_versions_are_skipped() -> None:
    model = ReadModel()
    p2 = point(50.45, 30.52, version=2, name_uk="нове")
    assert model.apply_point(p2)
    assert not model.apply_point(p2)
    assert not model.apply_point(p2.model_copy(update={"version": 1, "name_uk": "старе"}))
    assert model.points[p2.id].name_uk == "нове"


def test_nearest_orders_by_distance_and_filters() -> None:
    model = ReadModel()
    near, far, hidden, retired = (
        point(50.4501, 30.5234),
        point(50.50, 30.60),
        point(50.4502, 30.5235, visibility=Visibility.hidden),
        point(50.4503, 30.5236, retired=True),
    )
    no_heat = point(50.4504, 30.5237, services=[Service.charging])
    for p in (far, near, hidden, retired, no_heat):
        model.apply_point(p)
    model.apply_status(
        StatusState(point_id=far.id, version=1, state=OpenState.open, reported_at=datetime.now(UTC), reported_by="o")
    )

    hits = model.nearest(50.45, 30.52, limit=10, radius_m=50_000)
    assert [h.point.id for h in hits] == [near.id, no_heat.id, far.id]
    assert hits[0].distance_m < hits[1].distance_m < hits[2].distance_m

    with_heat = model.nearest(50.45, 30.52, limit=10, radius_m=50_000, services=frozenset({Service.heat}))
    assert no_heat.id not in [h.point.id for h in with_heat]
    assert [h.point.id for h in model.nearest(50.45, 30.52, limit=10, radius_m=50_000, state=OpenState.open)] == [
        far.id
    ]
    assert model.nearest(50.45, 30.52, limit=10, radius_m=100) == []
    assert len(model.nearest(50.45, 30.52, limit=1, radius_m=50_000)) == 1


def test_coarse_points_are_shown_rounded() -> None:
    model = ReadModel()
    coarse = point(50.456789, 30.523456, visibility=Visibility.coarse)
    model.apply_point(coarse)
    hit = model.nearest(50.45, 30.52, limit=1, radius_m=10_000)[0]
    assert (hit.place.lat, hit.place.lon) == (50.46, 30.52)
    assert hit.place.address_uk == "Київ"


def test_haversine_kyiv_to_lviv() -> None:
    assert 465_000 < haversine_m(50.4501, 30.5234, 49.8397, 24.0297) < 475_000
