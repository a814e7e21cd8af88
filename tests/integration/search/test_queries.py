"""Nearest, map box and text search over HTTP, fed by the registry's and status's events through NATS."""

import math
import random
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from poi_shared.contracts import OpenState, PointCategory, PowerSource, Service, Visibility
from tests.integration.routes.conftest import assert_problem
from tests.integration.search.conftest import Feed, area, status

pytestmark = pytest.mark.integration


def haversine_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """The brute-force reference: great-circle metres by the haversine formula."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * 6_371_008.8 * math.asin(math.sqrt(a))


def ids(response: Any) -> list[str]:
    assert response.status_code == 200, response.text
    return [item["id"] for item in response.json()["items"]]


def test_nearest_order_matches_a_brute_force_reference_on_random_data(search: TestClient, feed: Feed) -> None:
    here, rng = area(1), random.Random(11)
    points = [here.point(rng.gauss(0, 0.3), rng.gauss(0, 0.3)) for _ in range(400)]
    opened = {p.id for p in points[::2]}
    feed.publish(*points, *(status(p) for p in points if p.id in opened))
    for _ in range(40):
        lat, lon = here.lat + rng.uniform(-0.8, 0.8), here.lon + rng.uniform(-0.8, 0.8)
        limit, radius_km, open_now = rng.choice((1, 10, 50)), rng.choice((5, 25, 100)), rng.random() < 0.5
        reference = sorted(
            (haversine_m(lat, lon, p.lat, p.lon), str(p.id)) for p in points if not open_now or p.id in opened
        )
        expected = [(d, i) for d, i in reference if d <= radius_km * 1000][:limit]
        response = search.get(
            "/v1/search/nearest",
            params={"lat": lat, "lon": lon, "limit": limit, "radius_km": radius_km, "open_now": open_now},
        )
        items = response.json()["items"]
        assert [i["distance_m"] for i in items] == [round(d) for d, _ in expected]
        assert all(got == want or abs(d - round(d2)) <= 1 for got, want, d, d2 in _pairs(items, expected))


def _pairs(items: list[dict[str, Any]], expected: list[tuple[float, str]]) -> list[tuple[str, str, float, float]]:
    """(got id, expected id, got distance, expected distance): ids may differ only between equidistant points."""
    return [(i["id"], e[1], i["distance_m"], e[0]) for i, e in zip(items, expected, strict=True)]


def test_every_filter(search: TestClient, feed: Feed) -> None:
    here = area(2)
    plain, stale, closed, no_heat = here.point(), here.point(), here.point(), here.point(services=[Service.charging])
    business, full = here.point(category=PointCategory.business), here.point(capacity=50)
    wheelchair = here.point(services=[Service.heat, Service.wheelchair_accessible])
    mothers = here.point(services=[Service.heat, Service.mother_child])
    powered = here.point()
    feed.publish(plain, stale, closed, no_heat, business, full, wheelchair, mothers, powered)
    feed.publish(
        status(plain, occupancy=10),
        status(stale, reported_at=datetime.now(UTC) - timedelta(hours=4)),
        status(closed, state=OpenState.closed),
        status(no_heat),
        status(business),
        status(full, occupancy=50),
        status(wheelchair),
        status(mothers),
        status(powered, power=PowerSource.battery),
    )
    everyone = {str(p.id) for p in (plain, stale, closed, no_heat, business, full, wheelchair, mothers, powered)}

    def found(**params: Any) -> set[str]:
        return set(ids(search.get("/v1/search/nearest", params=here.near(limit=50, **params))))

    assert found() == everyone
    assert found(open_now="true") == everyone - {str(stale.id), str(closed.id)}
    assert found(state=["closed", "full"]) == {str(closed.id)}
    assert found(service=["heat", "charging"]) == everyone - {str(no_heat.id), str(wheelchair.id), str(mothers.id)}
    assert found(category="business") == {str(business.id)}
    assert found(free_places="true") == everyone - {str(full.id)}
    assert found(wheelchair="true") == {str(wheelchair.id)}
    assert found(mother_child="true") == {str(mothers.id)}
    assert found(power_on="true") == {str(powered.id)}
    assert found(open_now="true", power_on="true", service="heat") == {str(powered.id)}
    box = f"{here.lon - 0.1},{here.lat - 0.1},{here.lon + 0.1},{here.lat + 0.1}"
    assert set(ids(search.get("/v1/search/bbox", params={"bbox": box, "wheelchair": "true"}))) == {str(wheelchair.id)}


def test_an_item_carries_the_point_its_status_free_places_katotth_and_directions(
    search: TestClient, feed: Feed
) -> None:
    here = area(3)
    place = here.point(0.001, 0.001, name_uk="Ліцей №7", capacity=120)
    feed.publish(place, status(place, occupancy=40, power=PowerSource.generator, fuel_hours=6.5))
    item = search.get("/v1/search/nearest", params=here.near(limit=1)).json()["items"][0]
    assert item["id"] == str(place.id) and item["katotth"] == here.katotth and item["capacity"] == 120
    assert item["free_places"] == 80 and 100 < item["distance_m"] < 200
    assert item["status"]["state"] == "open" and item["status"]["power"] == "generator"
    assert item["status"]["fuel_hours"] == 6.5 and 0 <= item["status"]["age_s"] < 60
    assert item["links"]["geo"] == f"geo:{place.lat},{place.lon}"
    assert f"mlat={place.lat}&mlon={place.lon}" in item["links"]["osm"]
    assert item["links"]["google"].startswith("https://www.google.com/maps/search/?api=1&query=")


@pytest.fixture(scope="module")
def zhashkiv(feed: Feed) -> None:
    """Two points in one small town."""
    here = area(4)
    feed.publish(
        here.point(name_uk="Пункт «Веселка»", settlement="Жашків", address_uk="вул. Шевченка, 3, Жашків"),
        here.point(name_uk="Аптека «Подорожник»", settlement="Жашків", address_uk="вул. Миру, 9, Жашків"),
    )


@pytest.mark.parametrize(
    "words",
    ["Веселка Жашків", "Veselka Zhashkiv", "Veselka", "Vesleka Zhashkov", "Веселко", "Весел"],
    ids=["ukrainian", "latin", "one-word", "typos", "cyrillic-typo", "prefix"],
)
def test_text_finds_the_ukrainian_name_in_latin_script_and_with_typos(
    search: TestClient, zhashkiv: None, words: str
) -> None:
    here = area(4)
    response = search.get("/v1/search/text", params={"q": words, "katotth": here.katotth[:4]})
    items = response.json()["items"]
    assert items and items[0]["name_uk"] == "Пункт «Веселка»", words
    assert 0 < items[0]["score"] <= 100


def test_text_is_biased_toward_a_place_and_filtered_by_katotth_prefix(search: TestClient, feed: Feed) -> None:
    west, east = area(5), area(6)
    a, b = west.point(name_uk="Школа «Калина»"), east.point(name_uk="Школа «Калина»")
    feed.publish(a, b)
    near_east = search.get("/v1/search/text", params={"q": "Kalyna", "lat": east.lat, "lon": east.lon}).json()
    assert [i["id"] for i in near_east["items"]][:2] == [str(b.id), str(a.id)]
    assert near_east["items"][0]["distance_m"] == 0
    only_west = search.get("/v1/search/text", params={"q": "Kalyna", "katotth": west.katotth[:4]})
    assert ids(only_west) == [str(a.id)]


def test_a_box_holds_the_points_inside_it_up_to_the_limit(search: TestClient, feed: Feed) -> None:
    here = area(7)
    inside = [here.point(0.01 * n, 0.01 * n) for n in range(5)]
    outside = here.point(0.5, 0.5)
    feed.publish(*inside, outside)
    box = f"{here.lon - 0.05},{here.lat - 0.05},{here.lon + 0.1},{here.lat + 0.1}"
    answer = search.get("/v1/search/bbox", params={"bbox": box, "limit": 3}).json()
    assert answer["count"] == 3 and answer["matched"] == 5
    assert {i["id"] for i in answer["items"]} <= {str(p.id) for p in inside}


@pytest.mark.parametrize(
    ("path", "params", "location"),
    [
        ("/v1/search/nearest", {"lat": 10, "lon": 10, "bogus": 1}, "query.bogus"),
        ("/v1/search/nearest", {"lat": 10, "lon": 10, "lat2": 1}, "query.lat2"),
        ("/v1/search/nearest", {"lat": 10, "lon": 10, "open_now": "maybe"}, "query.open_now"),
        ("/v1/search/nearest", {"lat": 10, "lon": 10, "category": "cafe"}, "query.category.0"),
        ("/v1/search/nearest", {"lat": [10, 11], "lon": 10}, "query.lat"),
        ("/v1/search/bbox", {"bbox": "30.6,50.4,30.4,50.5"}, "query.bbox"),
        ("/v1/search/bbox", {"bbox": "30.4,50.5,30.6,50.4"}, "query.bbox"),
        ("/v1/search/bbox", {"bbox": "30.4,95,30.6,96"}, "query.bbox"),
        ("/v1/search/bbox", {"bbox": "west,south,east,north"}, "query.bbox"),
        ("/v1/search/bbox", {"bbox": "30,50,31,51", "limit": 1001}, "query.limit"),
        ("/v1/search/text", {"q": ""}, "query.q"),
        ("/v1/search/text", {"q": "a\x00b"}, "query.q"),
        ("/v1/search/text", {"q": "x" * 201}, "query.q"),
        ("/v1/search/text", {"q": "Київ", "lat": 50}, "query.lon"),
        ("/v1/search/text", {"q": "Київ", "katotth": "80"}, "query.katotth"),
        ("/v1/search/text", {"q": "Київ", "limit": 51}, "query.limit"),
        ("/v1/changes", {"cursor": "abc"}, "query.cursor"),
        ("/v1/changes", {"limit": 100_001}, "query.limit"),
        ("/v1/opendata/points.geojson", {"format": "xml"}, "query.format"),
        ("/v1/opendata/points.csv", {"download": "perhaps"}, "query.download"),
    ],
)
def test_bad_input_is_a_422_naming_the_parameter(
    search: TestClient, path: str, params: dict[str, Any], location: str
) -> None:
    assert_problem(search.get(path, params=params), 422, field=location)


def test_an_over_long_query_string_is_414(search: TestClient) -> None:
    problem = assert_problem(search.get("/v1/search/text", params={"q": "Київ", "katotth": "UA8" + "0" * 3000}), 414)
    assert problem["title"] == "URI Too Long"


def test_ogc_refuses_unknown_or_invalid_parameters_with_400(search: TestClient) -> None:
    for params in ({"bogus": "1"}, {"bbox": "1,2,3"}, {"limit": 0}, {"f": "html"}):
        problem = assert_problem(search.get("/v1/ogc/collections/points/items", params=params), 400)
        assert problem["detail"].startswith("query.")


def test_hidden_points_never_show_and_coarse_ones_only_roughly_in_every_answer(search: TestClient, feed: Feed) -> None:
    here = area(8)
    hidden = here.point(name_uk="Пункт «Сховок»", visibility=Visibility.hidden)
    coarse = here.point(0.0012345, 0.0012345, visibility=Visibility.coarse, address_uk="вул. Таємна, 7")
    later_hidden = here.point(name_uk="Пункт «Згодом»")
    feed.publish(hidden, coarse, later_hidden, status(hidden), status(coarse))
    feed.publish(later_hidden.model_copy(update={"version": 2, "visibility": Visibility.hidden}))
    secret = {str(hidden.id), str(later_hidden.id)}
    box = f"{here.lon - 1},{here.lat - 1},{here.lon + 1},{here.lat + 1}"
    answers = [
        search.get("/v1/search/nearest", params=here.near(limit=50)),
        search.get("/v1/search/bbox", params={"bbox": box}),
        search.get("/v1/search/text", params={"q": "Сховок Згодом Таємна", "katotth": here.katotth[:4]}),
        search.get("/v1/ogc/collections/points/items", params={"bbox": box, "limit": 100}),
    ]
    for answer in answers:
        assert answer.status_code == 200
        assert not secret & {
            str(item.get("id")) for item in answer.json().get("items", answer.json().get("features", []))
        }
    everything = search.get("/v1/opendata/points.geojson").text + search.get("/v1/opendata/points.csv").text
    assert not any(s in everything for s in secret) and "Таємна" not in everything
    for point_id in secret:
        assert search.get(f"/v1/ogc/collections/points/items/{point_id}").status_code == 404
    item = next(i for i in answers[0].json()["items"] if i["id"] == str(coarse.id))
    assert (item["lat"], item["lon"], item["exact_location"]) == (round(coarse.lat, 2), round(coarse.lon, 2), False)
    assert item["address_uk"] == coarse.settlement and item["address_en"] is None
    assert item["links"]["geo"] == f"geo:{round(coarse.lat, 2)},{round(coarse.lon, 2)}"
    feature = search.get(f"/v1/ogc/collections/points/items/{coarse.id}").json()
    assert feature["geometry"]["coordinates"] == [round(coarse.lon, 2), round(coarse.lat, 2)]
    text = search.get("/v1/search/text", params={"q": "Таємна", "katotth": here.katotth[:4]}).json()
    assert str(coarse.id) not in [i["id"] for i in text["items"]], "a coarse point's address is never searched"
