"""HTTP behaviour: ETags and 304, caching, gzip, CORS; open data as GeoJSON, CSV and OGC API pages; the change feed."""

import csv
import io

import pytest
from fastapi.testclient import TestClient

from poi_shared.contracts import OpenState, Visibility
from tests.integration.search.conftest import Feed, area, status

pytestmark = pytest.mark.integration


def test_a_client_holding_the_answer_gets_304_until_it_changes(search: TestClient, feed: Feed) -> None:
    here = area(11)
    place = here.point()
    feed.publish(place, status(place))
    first = search.get("/v1/search/nearest", params=here.near())
    etag = first.headers["etag"]
    assert first.status_code == 200 and etag.startswith('W/"')
    assert first.headers["cache-control"] == "public, max-age=5" and int(first.headers["x-data-age"]) >= 0
    again = search.get("/v1/search/nearest", params=here.near(), headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.content == b"" and again.headers["etag"] == etag
    feed.publish(status(place, version=2, state=OpenState.closed))
    changed = search.get("/v1/search/nearest", params=here.near(), headers={"If-None-Match": etag})
    assert changed.status_code == 200 and changed.headers["etag"] != etag
    assert changed.json()["items"][0]["status"]["state"] == "closed"
    for path in ("/v1/ogc/", "/v1/ogc/collections", f"/v1/ogc/collections/points/items/{place.id}"):
        tagged = search.get(path)
        assert search.get(path, headers={"If-None-Match": tagged.headers["etag"]}).status_code == 304, path


def test_large_answers_are_gzipped_for_clients_that_ask(search: TestClient, feed: Feed) -> None:
    here = area(12)
    feed.publish(*(here.point(0.001 * n) for n in range(10)))
    raw = search.get("/v1/search/nearest", params=here.near(), headers={"Accept-Encoding": "identity"})
    assert "content-encoding" not in raw.headers and len(raw.content) > 1400
    zipped = search.get("/v1/search/nearest", params=here.near(), headers={"Accept-Encoding": "gzip"})
    assert zipped.headers["content-encoding"] == "gzip" and zipped.headers["vary"].startswith("Accept-Encoding")
    assert int(zipped.headers["content-length"]) < len(raw.content) / 3
    assert [i["id"] for i in zipped.json()["items"]] == [i["id"] for i in raw.json()["items"]]
    small = search.get("/v1/ogc/conformance", headers={"Accept-Encoding": "gzip"})
    assert "content-encoding" not in small.headers


def test_browsers_may_read_but_not_write(search: TestClient) -> None:
    origin = {"Origin": "https://map.example"}
    read = search.get("/v1/ogc/conformance", headers=origin)
    assert read.headers["access-control-allow-origin"] == "*"
    assert "ETag" in read.headers["access-control-expose-headers"]
    preflight = {**origin, "Access-Control-Request-Method": "GET", "Access-Control-Request-Headers": "X-API-Key"}
    allowed = search.options("/v1/search/nearest", headers=preflight)
    assert allowed.status_code == 200 and allowed.headers["access-control-allow-methods"] == "GET"
    refused = search.options("/v1/keys", headers={**preflight, "Access-Control-Request-Method": "POST"})
    assert refused.status_code == 400


def test_geojson_and_csv_exports_hold_every_public_point(search: TestClient, feed: Feed) -> None:
    here = area(13)
    place, hidden = here.point(name_uk="Пункт «Експорт»"), here.point(visibility=Visibility.hidden)
    feed.publish(place, hidden, status(place))
    geojson = search.get("/v1/opendata/points.geojson")
    assert geojson.headers["content-type"] == "application/geo+json"
    features = {f["id"]: f for f in geojson.json()["features"]}
    assert geojson.json()["type"] == "FeatureCollection" and str(hidden.id) not in features
    feature = features[str(place.id)]
    assert feature["geometry"] == {"type": "Point", "coordinates": [place.lon, place.lat]}
    assert feature["properties"]["name_uk"] == "Пункт «Експорт»" and feature["properties"]["status"]["state"] == "open"
    exported = search.get("/v1/opendata/points.csv")
    assert exported.headers["content-type"].startswith("text/csv")
    rows = {row["id"]: row for row in csv.DictReader(io.StringIO(exported.text))}
    row = rows[str(place.id)]
    assert (row["katotth"], float(row["lon"]), float(row["lat"])) == (here.katotth, place.lon, place.lat)
    assert row["services"] == "heat charging" and row["state"] == "open"
    assert str(hidden.id) not in rows
    zipped = search.get("/v1/opendata/points.geojson", headers={"Accept-Encoding": "gzip"})
    assert zipped.headers["content-encoding"] == "gzip"
    assert search.get("/v1/opendata/points.csv", headers={"If-None-Match": exported.headers["etag"]}).status_code == 304
    assert len(zipped.json()["features"]) == len(geojson.json()["features"])  # the client unzipped it


def test_ogc_items_page_through_a_box_with_next_links(search: TestClient, feed: Feed) -> None:
    here = area(14)
    points = [here.point(0.01 * n, 0.01 * n) for n in range(7)]
    feed.publish(*points)
    box = f"{here.lon - 0.05},{here.lat - 0.05},{here.lon + 0.1},{here.lat + 0.1}"
    seen: list[str] = []
    url: str | None = "/v1/ogc/collections/points/items"
    params: dict[str, object] | None = {"bbox": box, "limit": 3}
    while url is not None:
        page = search.get(url, params=params)
        assert page.headers["content-type"] == "application/geo+json"
        body = page.json()
        assert body["numberMatched"] == 7 and body["numberReturned"] == len(body["features"]) <= 3
        seen += [f["id"] for f in body["features"]]
        url = next((link["href"] for link in body["links"] if link["rel"] == "next"), None)
        params = None
    assert seen == sorted(str(p.id) for p in points)


def test_the_change_feed_gives_every_change_after_a_cursor(search: TestClient, feed: Feed) -> None:
    here = area(15)
    start = search.get("/v1/changes")
    while start.json()["has_more"]:
        start = search.get("/v1/changes", params={"cursor": start.json()["next_cursor"]})
    cursor = start.json()["next_cursor"]
    added, retired, reported = here.point(), here.point(), here.point()
    feed.publish(added, retired, reported)
    feed.publish(retired.model_copy(update={"version": 2, "retired": True}), status(reported))
    page = search.get("/v1/changes", params={"cursor": cursor, "limit": 2}).json()
    rest = search.get("/v1/changes", params={"cursor": page["next_cursor"]}).json()
    assert page["has_more"] and not rest["has_more"]
    changes = {c["id"]: c for c in page["items"] + rest["items"]}
    assert changes[str(retired.id)]["change"] == "remove" and changes[str(retired.id)]["point"] is None
    assert changes[str(added.id)]["change"] == "upsert" and changes[str(added.id)]["point"]["id"] == str(added.id)
    assert changes[str(reported.id)]["point"]["status"]["state"] == "open"
    assert search.get("/v1/changes", params={"cursor": rest["next_cursor"]}).json()["items"] == []


@pytest.mark.parametrize("accept_encoding", ["identity", "gzip"])
def test_a_plain_nearest_query_is_answered_as_the_route_answers_it(
    search: TestClient, feed: Feed, accept_encoding: str
) -> None:
    """The quick path (a plain query) and the route (the same query percent-encoded) give the same answer."""
    here = area(14)
    feed.publish(*(here.point(0.001 * n) for n in range(5)))
    plain = f"lat={here.lat}&lon={here.lon}&limit=5&open_now=false&service=heat"
    encoded = plain.replace("=", "=%20", 1)  # " 50.1": the model strips it, the quick parser leaves it to the route
    headers = {"Accept-Encoding": accept_encoding}
    quick, routed = (search.get(f"/v1/search/nearest?{q}", headers=headers) for q in (plain, encoded))
    assert quick.status_code == routed.status_code == 200
    for answer in (quick, routed):  # the data age (in the body too, so its length) may have moved on between them
        answer.headers.pop("x-data-age"), answer.headers.pop("ratelimit"), answer.headers.pop("content-length")
    assert dict(quick.headers) == dict(routed.headers)
    quick_body, routed_body = quick.json(), routed.json()
    quick_body.pop("data_age_s"), routed_body.pop("data_age_s")
    assert quick_body == routed_body
    for query in (plain, encoded):
        tag = quick.headers["etag"]
        assert search.get(f"/v1/search/nearest?{query}", headers={"If-None-Match": tag}).status_code == 304
