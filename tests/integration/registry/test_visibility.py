"""Graded visibility: hidden points never reach public reads, lists or exports; oblast policies raise it."""

import asyncio
import csv
import io
import json
from typing import Any

import pytest
from fastapi.testclient import TestClient

from poi_cli import stack
from poi_registry.oblasts.service import apply_pending_policies
from poi_registry.settings import RegistrySettings
from poi_shared import db
from tests.integration.registry.conftest import Bearer, new_point, point_events, published, sql, unique_katotth
from tests.integration.routes.conftest import POINT, assert_problem

pytestmark = pytest.mark.integration
CHERKASY = {"lat": 49.4444, "lon": 32.0598, "settlement": "Черкаси", "address_uk": "вул. Хрещатик, 200, Черкаси"}


def exported(registry: TestClient, fmt: str, headers: dict[str, str] | None = None) -> dict[str, dict[str, Any]]:
    """The export by code: CSV rows, or GeoJSON features."""
    response = registry.get("/v1/points/export", params={"format": fmt}, headers=headers or {})
    assert response.status_code == 200, response.text
    if fmt == "csv":
        assert response.headers["content-type"] == "text/csv; charset=utf-8"
        return {row["code"]: row for row in csv.DictReader(io.StringIO(response.text))}
    assert response.headers["content-type"] == "application/geo+json"
    collection = response.json()
    assert collection["type"] == "FeatureCollection"
    return {f["properties"]["code"]: f for f in collection["features"]}


def test_hidden_points_never_reach_the_public(registry: TestClient, bearer: Bearer) -> None:
    area = unique_katotth()[:9]
    shown = new_point(registry, bearer, katotth=f"{area}0000000001", contact_phone="+380501234567")
    coarse = new_point(registry, bearer, katotth=f"{area}0000000002", visibility="coarse", lat=50.45678, lon=30.52345)
    hidden = new_point(registry, bearer, katotth=f"{area}0000000003", visibility="hidden")
    retired = new_point(registry, bearer, katotth=f"{area}0000000004")
    registry.post(f"/v1/points/{retired['id']}/retire", headers=bearer("admin"))

    for headers in ({}, bearer("integrator"), bearer("coordinator", katotth=["UA46"])):
        assert_problem(registry.get(f"/v1/points/{hidden['id']}", headers=headers), 404)
        listed = registry.get("/v1/points", params={"katotth": area, "lifecycle": "all"}, headers=headers).json()
        assert {p["code"] for p in listed["items"]} == {shown["code"], coarse["code"], retired["code"]}
        assert listed["total"] == 3 and all("contact_phone" not in p for p in listed["items"])
    manager = registry.get("/v1/points", params={"katotth": area}, headers=bearer("coordinator", katotth=[area]))
    assert hidden["code"] in {p["code"] for p in manager.json()["items"]}

    rows = exported(registry, "csv", bearer("integrator"))
    features = exported(registry, "geojson")
    for export in (rows, features):
        assert shown["code"] in export and coarse["code"] in export
        assert hidden["code"] not in export and retired["code"] not in export
    row = rows[coarse["code"]]
    assert (row["lat"], row["lon"], row["address_uk"], row["exact_location"]) == ("50.46", "30.52", "Київ", "false")
    assert "contact_phone" not in rows[shown["code"]] and "+380501234567" not in json.dumps(features)
    assert rows[shown["code"]]["address_uk"] == POINT["address_uk"]
    feature = features[shown["code"]]
    assert feature["geometry"] == {"type": "Point", "coordinates": [POINT["lon"], POINT["lat"]]}
    assert feature["id"] == shown["id"] and feature["properties"]["services"] == ["charging", "heat"]
    assert features[coarse["code"]]["geometry"]["coordinates"] == [30.52, 50.46]
    assert "attachment" in registry.get("/v1/points/export").headers["content-disposition"]


def test_an_oblast_policy_changes_exactly_the_points_it_moves(
    registry: TestClient, bearer: Bearer, infra: stack.Infrastructure, settings: RegistrySettings
) -> None:
    admin = bearer("admin", subject="admin-1")
    own = ["public", "public", "public", "public", "coarse", "hidden", "public"]
    points = [
        new_point(registry, bearer, katotth=unique_katotth("71"), visibility=v, **CHERKASY) for v in own
    ]  # more points than a batch (3)

    def effective() -> list[str]:
        return [registry.get(f"/v1/points/{p['id']}", headers=admin).json()["effective_visibility"] for p in points]

    coarse = registry.put("/v1/oblast-policies/UA71", json={"visibility": "coarse"}, headers=admin)
    assert coarse.status_code == 200, coarse.text
    assert coarse.json()["points_changed"] == 5 and coarse.json()["set_by"] == "admin-1"
    assert effective() == ["coarse"] * 5 + ["hidden", "coarse"]
    view = registry.get(f"/v1/points/{points[0]['id']}", headers=admin).json()
    assert (view["visibility"], view["oblast_visibility"], view["version"]) == ("public", "coarse", 2)
    assert registry.get(f"/v1/points/{points[0]['id']}").json()["exact_location"] is False
    assert (
        registry.put("/v1/oblast-policies/UA71", json={"visibility": "coarse"}, headers=admin).json()["points_changed"]
        == 0
    )

    # A point registered under the policy gets it at once; its own visibility is kept for when it lifts.
    late = new_point(registry, bearer, katotth=unique_katotth("71"), **CHERKASY)
    assert (late["version"], late["visibility"], late["effective_visibility"]) == (1, "public", "coarse")
    points.append(late)

    hidden = registry.put("/v1/oblast-policies/UA71", json={"visibility": "hidden"}, headers=admin).json()
    assert hidden["points_changed"] == 7 and effective() == ["hidden"] * 8
    for headers in ({}, bearer("integrator")):
        assert registry.get("/v1/points", params={"katotth": "UA71"}, headers=headers).json()["total"] == 0
    assert not {p["code"] for p in points} & set(exported(registry, "csv"))
    policies = {p["oblast"]: p for p in registry.get("/v1/oblast-policies", headers=admin).json()}
    assert policies["UA71"]["visibility"] == "hidden" and policies["UA71"]["name_en"] == "Cherkasy oblast"
    assert policies["UA46"]["visibility"] == "public" and len(policies) == 27

    lifted = registry.put("/v1/oblast-policies/UA71", json={"visibility": "public"}, headers=admin).json()
    assert lifted["points_changed"] == 7 and effective() == [*own, "public"]

    published(settings.database_url)
    versions = [
        [(e["version"], e["visibility"]) for _, e in point_events(infra, settings.namespace, p["id"])] for p in points
    ]
    assert versions[0] == [(1, "public"), (2, "coarse"), (3, "hidden"), (4, "public")]
    assert versions[4] == [(1, "coarse"), (2, "hidden"), (3, "coarse")]
    assert versions[5] == [(1, "hidden")]  # hidden of its own: no policy moved it
    assert versions[7] == [(1, "coarse"), (2, "hidden"), (3, "public")]
    history = registry.get(f"/v1/points/{points[0]['id']}/history", headers=admin).json()["items"][0]
    assert history["reason"] == "oblast policy UA71: public" and history["changed_by"] == "admin-1"
    assert history["changes"] == [{"field": "effective_visibility", "old": "hidden", "new": "public"}]

    assert_problem(registry.put("/v1/oblast-policies/UA99", json={"visibility": "hidden"}, headers=admin), 404)
    assert_problem(registry.put("/v1/oblast-policies/UA7", json={"visibility": "hidden"}, headers=admin), 422)
    bad = registry.put("/v1/oblast-policies/UA71", json={"visibility": "secret"}, headers=admin)
    assert_problem(bad, 422, field="body.visibility")


def test_a_policy_change_cut_short_is_finished_at_start(
    registry: TestClient, bearer: Bearer, settings: RegistrySettings
) -> None:
    points = [
        new_point(registry, bearer, katotth=unique_katotth("18"), lat=50.2547, lon=28.6587, settlement="Житомир")
        for _ in range(4)
    ]
    # As if the registry stopped right after storing the policy, before any point was brought in line.
    sql(
        settings.database_url, "INSERT INTO oblast_policies (oblast, visibility, set_by) VALUES ('UA18', 'coarse', 'x')"
    )

    async def finish() -> int:
        pool = await db.create_pool(settings.database_url, timeout_s=10)
        try:
            return await apply_pending_policies(pool, namespace=settings.namespace, batch_size=3)
        finally:
            await pool.close()

    assert asyncio.run(finish()) == 4
    assert asyncio.run(finish()) == 0
    for point in points:
        view = registry.get(f"/v1/points/{point['id']}", headers=bearer("admin")).json()
        assert (view["effective_visibility"], view["version"]) == ("coarse", 2)
