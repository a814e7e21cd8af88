"""Search as a process, fed by the registry and status services: OWSLib reads its OGC API, text finds in Latin."""

import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from owslib.ogcapi.features import Features

from tests.e2e.conftest import RunningStack

pytestmark = pytest.mark.e2e
POLL_BOUND_S = 30.0
POINT = {
    "name_uk": "Пункт незламності «Світанок»",
    "category": "state",
    "host_type": "library",
    "lat": 46.4825,
    "lon": 30.7233,
    "katotth": "UA51100270010015904",
    "address_uk": "вул. Дерибасівська, 5, Одеса",
    "settlement": "Одеса",
    "capacity": 60,
    "services": ["heat", "charging", "wheelchair_accessible"],
    "visibility": "public",
}


def eventually(probe: Callable[[], Any], what: str) -> Any:
    deadline = time.monotonic() + POLL_BOUND_S
    while not (result := probe()):
        assert time.monotonic() < deadline, f"{what} did not happen within {POLL_BOUND_S:.0f}s"
        time.sleep(0.1)
    return result


def test_owslib_reads_the_points_collection_with_live_status(services: RunningStack) -> None:
    registry, status, search = (services.urls[s] for s in ("registry", "status", "search"))
    coordinator = {"Authorization": f"Bearer {services.token(['coordinator'], katotth=['UA51'])}"}
    with httpx.Client(timeout=10) as client:
        created = client.post(f"{registry}/v1/points", json=POINT, headers=coordinator)
        assert created.status_code == 201, created.text
        point_id = created.json()["id"]
        eventually(
            lambda: (
                client.post(
                    f"{status}/v1/points/{point_id}/status", json={"state": "open"}, headers=coordinator
                ).status_code
                == 201
            ),
            "status learns the point and takes the report",
        )
        near = {"lat": POINT["lat"], "lon": POINT["lon"], "open_now": "true", "wheelchair": "true"}

        def open_in_search() -> bool:
            items = client.get(f"{search}/v1/search/nearest", params=near).json()["items"]
            return any(i["id"] == point_id for i in items)

        eventually(open_in_search, "search shows the point open")
        found = client.get(f"{search}/v1/search/text", params={"q": "Svitanok Odesa"}).json()["items"]
        assert found and found[0]["id"] == point_id, "the KMU-55 Latin spelling finds the Ukrainian name"

    ogc = Features(f"{search}/v1/ogc/")
    assert "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core" in ogc.conformance()["conformsTo"]
    assert [c["id"] for c in ogc.collections()["collections"]] == ["points"]
    assert ogc.collection("points")["itemType"] == "feature"
    page = ogc.collection_items("points", bbox=[30.6, 46.4, 30.8, 46.6], limit=100)
    feature = next(f for f in page["features"] if f["id"] == point_id)
    assert feature["geometry"]["coordinates"] == [POINT["lon"], POINT["lat"]]
    assert feature["properties"]["status"]["state"] == "open" and page["numberMatched"] >= 1
    assert ogc.collection_item("points", point_id)["properties"]["name_uk"] == POINT["name_uk"]
