"""Search route: public (no token), its 2xx and 422, coarse points at the settlement, hidden ones never."""

from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.integration.routes.conftest import POINT, Bearer, assert_problem, eventually, register_point

pytestmark = pytest.mark.integration
# Far from every other point the route tests register, so "nearest" here sees only this test's points.
LVIV = {"lat": 49.8397, "lon": 24.0297, "katotth": "UA46060250010015970", "settlement": "Львів"}


def nearest(search_client: TestClient, **params: Any) -> dict[str, Any]:
    response = search_client.get("/v1/search/nearest", params={"lat": LVIV["lat"], "lon": LVIV["lon"], **params})
    assert response.status_code == 200, response.text
    return response.json()


def hit(search_client: TestClient, point_id: str) -> dict[str, Any] | None:
    return next((i for i in nearest(search_client, limit=50)["items"] if i["id"] == point_id), None)


def test_nearest_finds_a_registered_point_with_its_status(
    search_client: TestClient, registry_client: TestClient, bearer: Bearer
) -> None:
    point = register_point(registry_client, bearer, **LVIV, address_uk="пл. Ринок, 1, Львів")
    found = eventually(lambda: hit(search_client, point["id"]), "search finds the point")
    assert found["address_uk"] == "пл. Ринок, 1, Львів" and found["status"]["state"] == "unknown"
    assert found["distance_m"] == 0


def test_coarse_point_shows_the_settlement_not_the_address(
    search_client: TestClient, registry_client: TestClient, bearer: Bearer
) -> None:
    point = register_point(
        registry_client,
        bearer,
        **{**LVIV, "lat": 49.84123, "lon": 24.03456},
        visibility="coarse",
        address_uk="вул. Таємна, 7, Львів",
        address_en="7 Secret St",
    )
    found = eventually(lambda: hit(search_client, point["id"]), "search finds the coarse point")
    assert found["address_uk"] == "Львів" and found["address_en"] is None
    assert (found["lat"], found["lon"]) == (49.84, 24.03)
    assert "Таємна" not in str(found) and "Secret" not in str(found)


def test_hidden_point_is_never_found(search_client: TestClient, registry_client: TestClient, bearer: Bearer) -> None:
    hidden = register_point(registry_client, bearer, **LVIV, visibility="hidden")
    # Register a visible one after it: once search has that, it has read past the hidden one too.
    after = register_point(registry_client, bearer, **LVIV)
    eventually(lambda: hit(search_client, after["id"]), "search reads past the hidden point")
    assert hit(search_client, hidden["id"]) is None


@pytest.mark.parametrize(
    ("params", "location"),
    [
        ({"lat": 91}, "query.lat"),
        ({"lat": "north"}, "query.lat"),
        ({"lat": "nan"}, "query.lat"),
        ({"lon": -181}, "query.lon"),
        ({"limit": 2**63}, "query.limit"),
        ({"limit": 10**30}, "query.limit"),
        ({"limit": 0}, "query.limit"),
        ({"limit": 51}, "query.limit"),
        ({"radius_km": 0}, "query.radius_km"),
        ({"radius_km": 201}, "query.radius_km"),
        ({"radius_km": "inf"}, "query.radius_km"),
        ({"state": "ajar"}, "query.state.0"),
        ({"service": "sauna"}, "query.service.0"),
    ],
    ids=[
        "lat-range",
        "lat-word",
        "lat-nan",
        "lon-range",
        "limit-2**63",
        "limit-huge",
        "limit-zero",
        "limit-over-max",
        "radius-zero",
        "radius-over-max",
        "radius-inf",
        "state",
        "service",
    ],
)
def test_bad_queries_are_422_naming_the_parameter(
    search_client: TestClient, params: dict[str, Any], location: str
) -> None:
    query = {"lat": POINT["lat"], "lon": POINT["lon"], **params}
    problem = assert_problem(search_client.get("/v1/search/nearest", params=query), 422, field=location)
    assert problem["title"] == "Unprocessable Content"


def test_missing_coordinates_are_named(search_client: TestClient) -> None:
    assert_problem(search_client.get("/v1/search/nearest", params={"lon": 30}), 422, field="query.lat")
