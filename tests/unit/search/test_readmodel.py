"""The read model: newest versions only, exact nearest order, every filter, visibility, text, boxes, the change feed."""

import math
import random
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs

import numpy as np
import orjson
import pytest

from poi_search.catalog import service
from poi_search.catalog.models import BoxQuery, NearestQuery, TextQuery, read_nearest
from poi_search.catalog.readmodel import Box, Filters, ReadModel
from poi_shared.contracts import (
    HostType,
    OpenState,
    PointCategory,
    PointState,
    PowerSource,
    Schedule,
    Service,
    StatusState,
    Visibility,
)

NOW = datetime.now(UTC)
KYIV = (50.4501, 30.5234)


def point(lat: float, lon: float, **changes: Any) -> PointState:
    base: dict[str, Any] = {
        "id": uuid.uuid4(),
        "code": "80-000001",
        "version": 1,
        "name_uk": "Пункт незламності",
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
        "updated_at": NOW,
    }
    return PointState.model_validate({**base, **changes})


def status(of: PointState, **changes: Any) -> StatusState:
    base: dict[str, Any] = {
        "point_id": of.id,
        "version": 1,
        "state": OpenState.open,
        "reported_at": NOW,
        "reported_by": "operator",
    }
    return StatusState.model_validate({**base, **changes})


class Model:
    """A read model fed like the service feeds it, with the stream sequences counted."""

    def __init__(self) -> None:
        self.model = ReadModel(index_delta_max=10**9)
        self.seq = {"points": 0, "status": 0}

    def put(self, *events: PointState | StatusState) -> None:
        for event in events:
            stream = "points" if isinstance(event, PointState) else "status"
            self.seq[stream] += 1
            if isinstance(event, PointState):
                self.model.apply_point(event, self.seq[stream])
            else:
                self.model.apply_status(event, self.seq[stream])

    def ids(self, slots: Any) -> list[str]:
        return [self.model.records[s].id for s in slots.tolist()]

    def nearest(self, lat: float, lon: float, limit: int = 50, radius_m: float = 50_000, **query: Any) -> list[str]:
        filters = service.filters_of(
            NearestQuery.model_validate({"lat": lat, "lon": lon, **query}),
            now=datetime.now(UTC).timestamp(),
            open_max_age_s=3 * 3600,
        )
        slots, _ = self.model.nearest(lat, lon, limit=limit, radius_m=radius_m, filters=filters)
        return self.ids(slots)

    def item(self, point_id: str) -> dict[str, Any]:
        slot = self.model.slot_of(point_id)
        assert slot is not None
        record = self.model.records[slot]
        return orjson.loads(record.item(record.age(datetime.now(UTC).timestamp()), b""))


def test_older_and_repeated_versions_change_nothing() -> None:
    fed = Model()
    p2 = point(*KYIV, version=2, name_uk="нове")
    fed.put(p2)
    before = fed.item(str(p2.id))
    assert not fed.model.apply_point(p2, 99)
    assert not fed.model.apply_point(p2.model_copy(update={"version": 1, "name_uk": "старе"}), 100)
    assert fed.item(str(p2.id)) == before and before["name_uk"] == "нове"
    s2 = status(p2, version=2, state=OpenState.closed)
    fed.put(s2)
    assert not fed.model.apply_status(s2.model_copy(update={"version": 1, "state": OpenState.open}), 100)
    assert fed.item(str(p2.id))["status"]["state"] == "closed"
    assert fed.model.heads() == (1, 1), "skipped events move no cursor"


@pytest.mark.parametrize("merged", [True, False], ids=["indexed", "dirty"])
def test_nearest_order_matches_a_brute_force_reference(merged: bool) -> None:
    rng, fed = random.Random(8), Model()
    points = []
    for n in range(2500):
        lat, lon = (
            (rng.gauss(50.45, 0.1), rng.gauss(30.52, 0.15))
            if n % 4 == 0
            else (rng.uniform(44, 52.5), rng.uniform(22, 40))
        )
        points.append(point(lat, lon))
    points.append(point(52.52, 13.40))  # Berlin: the grid must cover far-away points too
    fed.put(*points)
    if merged:
        fed.model.merge_index()
    lats, lons = np.radians([p.lat for p in points]), np.radians([p.lon for p in points])
    ids = np.array([str(p.id) for p in points])
    for _ in range(300):
        lat, lon = rng.uniform(43, 54), rng.uniform(12, 42)
        limit, radius = rng.choice((1, 10, 50)), rng.choice((2_000, 30_000, 200_000, 2_000_000))
        # The reference: haversine to every point, sorted.
        a = np.sin((lats - math.radians(lat)) / 2) ** 2
        a += math.cos(math.radians(lat)) * np.cos(lats) * np.sin((lons - math.radians(lon)) / 2) ** 2
        distances = 2 * 6_371_008.8 * np.arcsin(np.sqrt(a))
        order = np.argsort(distances, kind="stable")
        order = order[distances[order] <= radius][:limit]
        slots, metres = fed.model.nearest(lat, lon, limit=limit, radius_m=radius, filters=Filters())
        assert metres.tolist() == pytest.approx(distances[order].tolist(), abs=0.01)
        # The same points in the same order, but where two are equally far.
        for got, want, d in zip(fed.ids(slots), ids[order], distances[order], strict=True):
            assert got == want or np.count_nonzero(np.abs(distances - d) < 0.01) > 1


def test_equally_near_points_are_answered_in_one_order_whether_indexed_or_not() -> None:
    # Points at one place, some indexed and some added since: the same query gives the same answer before and
    # after the index is rebuilt (an ETag that changed with the index would make clients fetch the same data again).
    fed = Model()
    fed.put(*(point(*KYIV) for _ in range(3)), point(49.84, 24.03))
    fed.model.merge_index()
    fed.put(*(point(*KYIV) for _ in range(3)))
    before = [fed.nearest(*KYIV, limit=limit) for limit in (1, 2, 4, 6)]
    fed.model.merge_index()
    assert [fed.nearest(*KYIV, limit=limit) for limit in (1, 2, 4, 6)] == before
    assert len(set(before[-1])) == 6, "every point at the place, each once"


def test_a_moved_point_is_found_at_its_new_place_before_and_after_the_index_is_rebuilt() -> None:
    fed = Model()
    moving = point(*KYIV)
    fed.put(moving, point(49.84, 24.03))
    fed.model.merge_index()
    fed.put(moving.model_copy(update={"version": 2, "lat": 49.8401, "lon": 24.0301}))
    assert fed.nearest(49.8401, 24.0301, limit=1) == [str(moving.id)]
    assert str(moving.id) not in fed.nearest(*KYIV, radius_m=10_000)
    fed.model.merge_index()
    assert fed.nearest(49.8401, 24.0301, limit=1) == [str(moving.id)]
    assert str(moving.id) not in fed.nearest(*KYIV, radius_m=10_000)


def test_every_filter() -> None:
    fed = Model()
    plain = point(*KYIV)
    stale = point(*KYIV)
    closed = point(*KYIV)
    no_heat = point(*KYIV, services=[Service.charging])
    business = point(*KYIV, category=PointCategory.business)
    full = point(*KYIV, capacity=50)
    wheelchair = point(*KYIV, services=[Service.heat, Service.wheelchair_accessible])
    mothers = point(*KYIV, services=[Service.heat, Service.mother_child])
    powered = point(*KYIV)
    silent = point(*KYIV)  # never reported: unknown
    fed.put(plain, stale, closed, no_heat, business, full, wheelchair, mothers, powered, silent)
    fed.put(
        status(plain, occupancy=10),
        status(stale, reported_at=NOW - timedelta(hours=4)),
        status(closed, state=OpenState.closed),
        status(no_heat),
        status(business),
        status(full, occupancy=50),
        status(wheelchair),
        status(mothers),
        status(powered, power=PowerSource.generator),
    )
    everyone = {str(p.id) for p in (plain, stale, closed, no_heat, business, full, wheelchair, mothers, powered)}
    everyone.add(str(silent.id))
    assert set(fed.nearest(*KYIV)) == everyone
    assert set(fed.nearest(*KYIV, open_now=True)) == everyone - {str(stale.id), str(closed.id), str(silent.id)}
    assert set(fed.nearest(*KYIV, state=["unknown"])) == {str(silent.id)}
    assert set(fed.nearest(*KYIV, state=["closed"])) == {str(closed.id)}
    assert set(fed.nearest(*KYIV, service=["heat", "charging"])) == everyone - {
        str(no_heat.id),
        str(wheelchair.id),
        str(mothers.id),
    }
    assert set(fed.nearest(*KYIV, category=["business"])) == {str(business.id)}
    assert set(fed.nearest(*KYIV, power_on=True, state=["open", "unknown"])) == {str(powered.id)}
    assert str(full.id) not in fed.nearest(*KYIV, free_places=True)
    assert str(plain.id) in fed.nearest(*KYIV, free_places=True), "unknown occupancy counts as room"
    assert set(fed.nearest(*KYIV, wheelchair=True)) == {str(wheelchair.id)}
    assert set(fed.nearest(*KYIV, mother_child=True)) == {str(mothers.id)}
    assert set(fed.nearest(*KYIV, power_on=True)) == {str(powered.id)}
    assert fed.item(str(full.id))["free_places"] == 0 and fed.item(str(plain.id))["free_places"] == 90


def test_hidden_and_retired_points_are_never_answered_and_coarse_ones_only_roughly() -> None:
    fed = Model()
    hidden = point(*KYIV, visibility=Visibility.hidden, name_uk="Таємний пункт")
    retired = point(*KYIV, retired=True, name_uk="Закритий пункт")
    coarse = point(50.456789, 30.523456, visibility=Visibility.coarse, address_uk="вул. Потаємна, 7")
    fed.put(hidden, retired, coarse)
    fed.model.merge_index()
    assert fed.nearest(*KYIV) == [str(coarse.id)]
    item = fed.item(str(coarse.id))
    assert (item["lat"], item["lon"], item["exact_location"]) == (50.46, 30.52, False)
    assert item["address_uk"] == "Київ" and "Потаємна" not in str(item)
    box, _ = fed.model.within(Box(30, 50, 31, 51), filters=Filters(), limit=10)
    assert fed.ids(box) == [str(coarse.id)]
    for words in ("Таємний", "Закритий", "Потаємна"):
        slots, _, _ = fed.model.search_text(words, filters=Filters(), limit=10, near=None)
        assert str(hidden.id) not in fed.ids(slots) and str(retired.id) not in fed.ids(slots)
        assert str(coarse.id) not in fed.ids(slots) or words != "Потаємна", "a coarse point's address is secret"
    # Hidden later: gone at once, and the spatial index never answers it from its old position.
    fed.put(coarse.model_copy(update={"version": 2, "visibility": Visibility.hidden}))
    assert fed.nearest(*KYIV) == []


@pytest.mark.parametrize(
    ("query", "found"),
    [
        ("Ліцей Хрещатик", "Ліцей №5"),
        ("Litsei Khreshchatyk", "Ліцей №5"),  # KMU-55 Latin
        ("litsej khreshatyk", "Ліцей №5"),  # typos
        ("Хрещятик", "Ліцей №5"),  # a typo in Cyrillic
        ("Ліц", "Ліцей №5"),  # still typing
        ("Zviazok", "Пункт «Зв'язок»"),  # the apostrophe is dropped, as KMU-55 does
        ("Bila Tserkva", "Бібліотека, Біла Церква"),
    ],
)
def test_text_finds_ukrainian_names_in_latin_and_with_typos(query: str, found: str) -> None:
    fed = Model()
    fed.put(
        point(*KYIV, name_uk="Ліцей №5", address_uk="вул. Хрещатик, 1, Київ"),
        point(*KYIV, name_uk="Пункт «Зв'язок»", address_uk="вул. Садова, 3, Київ"),
        point(49.8, 30.1, name_uk="Бібліотека, Біла Церква", settlement="Біла Церква", address_uk="вул. Леся, 2"),
        point(*KYIV, name_uk="Аптека №3", address_uk="вул. Січова, 9, Київ"),
    )
    slots, scores, _ = fed.model.search_text(query, filters=Filters(), limit=5, near=None)
    names = [fed.item(i)["name_uk"] for i in fed.ids(slots)]
    assert names and names[0] == found and 0 < scores[0] <= 100


def test_text_is_biased_toward_a_place_and_filtered_by_katotth() -> None:
    fed = Model()
    kyiv = point(*KYIV, name_uk="Школа №1", katotth="UA80000000000093317")
    lviv = point(49.84, 24.03, name_uk="Школа №1", settlement="Львів", katotth="UA46060250010015970")
    fed.put(kyiv, lviv)
    near_lviv, _, metres = fed.model.search_text("Школа", filters=Filters(), limit=2, near=(49.84, 24.03))
    assert fed.ids(near_lviv) == [str(lviv.id), str(kyiv.id)] and metres is not None and metres[0] < 100
    query = TextQuery.model_validate({"q": "Школа", "katotth": "UA80"})
    filters = service.filters_of(query, now=NOW.timestamp(), open_max_age_s=3600, katotth=query.katotth)
    only_kyiv, _, _ = fed.model.search_text("Школа", filters=filters, limit=2, near=(49.84, 24.03))
    assert fed.ids(only_kyiv) == [str(kyiv.id)]


def test_a_box_answers_what_lies_inside_it_nearest_its_centre_first() -> None:
    fed = Model()
    centre, edge, outside = point(50.45, 30.5), point(50.49, 30.59), point(50.7, 30.5)
    fed.put(centre, edge, outside)
    query = BoxQuery.model_validate({"bbox": "30.4,50.4,30.6,50.5"})
    slots, matched = fed.model.within(query.box(), filters=Filters(), limit=1)
    assert fed.ids(slots) == [str(centre.id)] and matched == 2


@pytest.mark.parametrize("bbox", ["30.6,50.4,30.4,50.5", "30.4,50.5,30.6,50.4", "30.4,50.4,30.6", "190,0,191,1"])
def test_a_wrong_box_is_refused(bbox: str) -> None:
    with pytest.raises(ValueError, match="bbox"):
        BoxQuery.model_validate({"bbox": bbox})


def test_the_change_feed_pages_through_every_change_once_and_then_only_what_changed() -> None:
    fed = Model()
    points = [point(*KYIV) for _ in range(5)]
    fed.put(*points, *(status(p) for p in points))
    seen: dict[str, bool] = {}
    after, more = (0, fed.model.heads()[1]), True
    while more:
        changes, next_points, next_status, more = fed.model.changes(
            after_points=after[0], after_status=after[1], limit=2
        )
        assert len(changes) <= 2
        seen.update({fed.model.records[c.slot].id: c.removed for c in changes})
        after = (next_points, next_status)
    assert seen == {str(p.id): False for p in points}
    assert fed.model.changes(after_points=after[0], after_status=after[1], limit=10)[0] == []

    fed.put(status(points[0], version=2, state=OpenState.closed))
    fed.put(points[1].model_copy(update={"version": 2, "visibility": Visibility.hidden}))
    changes, *_ = fed.model.changes(after_points=after[0], after_status=after[1], limit=10)
    assert [(fed.model.records[c.slot].id, c.removed) for c in changes] == [
        (str(points[1].id), True),
        (str(points[0].id), False),
    ]


SCALARS = {"lat", "lon", "limit", "radius_km", "open_now", "free_places", "wheelchair", "mother_child", "power_on"}


@pytest.mark.parametrize(
    "raw",
    [
        "lat=50.45&lon=30.52",
        "lat=-0&lon=180&limit=50&radius_km=0.5",
        "lat=50&lon=30&limit=10&radius_km=50&open_now=true&service=heat&service=charging",
        "lat=50&lon=30&state=open&state=full&category=business&free_places=1&wheelchair=0&mother_child=false",
        "lat=50&lon=30&power_on=true&&",
    ],
)
def test_a_plain_nearest_query_is_read_as_the_model_reads_it(raw: str) -> None:
    """The hot path's parser agrees with NearestQuery on every plain query string it accepts."""
    quick = read_nearest(raw.encode())
    assert quick is not None
    model = NearestQuery.model_validate(
        {k: v for k, v in parse_qs(raw).items()} | {k: v[0] for k, v in parse_qs(raw).items() if k in SCALARS}
    )
    assert {name: getattr(quick, name) for name in NearestQuery.model_fields} == model.model_dump()


@pytest.mark.parametrize(
    "raw",
    [
        "lat=50",  # lon missing
        "lat=91&lon=30",
        "lat=50&lon=30&lat=51",  # given twice
        "lat=50&lon=30&bogus=1",
        "lat=50&lon=30&open_now=yes",  # valid for the model, but not plain: the route reads it
        "lat=5e1&lon=30",
        "lat=nan&lon=30",
        "lat=50&lon=30&limit=0",
        "lat=50&lon=30&radius_km=0",
        "lat=50&lon=30&service=cafe",
        "lat=50&lon=30&service=h%65at",
        "lat=+50&lon=30",
        "lat&lon=30",
    ],
)
def test_anything_but_a_plain_valid_nearest_query_is_left_to_the_model(raw: str) -> None:
    """Odd spellings and bad values go to NearestQuery, which accepts or refuses them precisely."""
    assert read_nearest(raw.encode()) is None
