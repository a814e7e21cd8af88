"""A point's life through the API: versions, events, history, ETags, idempotent creates, the place check, lists."""

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from fastapi.testclient import TestClient

from poi_cli import stack
from poi_registry.settings import RegistrySettings
from tests.integration.registry.conftest import Bearer, new_point, point_events, published, sql, unique_katotth
from tests.integration.routes.conftest import POINT, assert_problem

pytestmark = pytest.mark.integration
REGISTERED, UPDATED = "ua.poi.point.registered.v1", "ua.poi.point.updated.v1"
RETIRED, RESTORED = "ua.poi.point.retired.v1", "ua.poi.point.restored.v1"


def patch(client: TestClient, point: dict[str, Any], headers: dict[str, str], version: int, **changes: Any) -> Any:
    return client.patch(f"/v1/points/{point['id']}", json=changes, headers={**headers, "If-Match": f'"{version}"'})


def test_every_change_yields_exactly_one_event_with_its_version(
    registry: TestClient, bearer: Bearer, infra: stack.Infrastructure, settings: RegistrySettings
) -> None:
    admin = bearer("admin", subject="alice")
    point = new_point(registry, bearer, contact_phone="+380501234567")
    changed = patch(registry, point, admin, 1, capacity=150, schedule={"kind": "on_blackout", "note": "вхід з двору"})
    assert changed.status_code == 200 and changed.json()["version"] == 2 and changed.headers["etag"] == '"2"'
    # The same values again change nothing: no version, no event, no history.
    same = patch(registry, point, admin, 2, capacity=150)
    assert same.status_code == 200 and same.json()["version"] == 2
    path = f"/v1/points/{point['id']}"
    retired = registry.post(f"{path}/retire", headers=admin)
    assert retired.json()["version"] == 3 and retired.json()["retired"] is True
    assert registry.post(f"{path}/retire", headers=admin).json()["version"] == 3  # already retired
    restored = registry.post(f"{path}/restore", headers=admin)
    assert restored.json()["version"] == 4 and restored.json()["retired"] is False

    published(settings.database_url)
    events = point_events(infra, settings.namespace, point["id"])
    assert [(t, e["version"]) for t, e in events] == [(REGISTERED, 1), (UPDATED, 2), (RETIRED, 3), (RESTORED, 4)]
    assert events[1][1]["capacity"] == 150 and events[2][1]["retired"] is True and events[3][1]["retired"] is False
    assert all("contact_phone" not in e and e["visibility"] == "public" for _, e in events)

    history = registry.get(f"{path}/history", headers=admin).json()
    assert [(h["version"], h["action"], h["changed_by"]) for h in history["items"]] == [
        (4, "restored", "alice"),
        (3, "retired", "alice"),
        (2, "updated", "alice"),
        (1, "registered", "tester"),
    ]
    update = history["items"][2]["changes"]
    assert {"field": "capacity", "old": 120, "new": 150} in update
    assert [c["field"] for c in update] == ["capacity", "schedule"]
    registration = {c["field"]: c["new"] for c in history["items"][3]["changes"]}
    assert registration["contact_phone"] == "+380501234567" and registration["code"] == point["code"]
    older = registry.get(f"{path}/history", params={"limit": 2}, headers=admin).json()
    assert [h["version"] for h in older["items"]] == [4, 3] and older["next_before"] == 3
    rest = registry.get(f"{path}/history", params={"before": 3}, headers=admin).json()
    assert [h["version"] for h in rest["items"]] == [2, 1] and rest["next_before"] is None


def test_a_stale_update_is_412_and_changes_nothing(registry: TestClient, bearer: Bearer) -> None:
    admin = bearer("admin")
    point = new_point(registry, bearer)
    path = f"/v1/points/{point['id']}"
    assert registry.get(path).headers["etag"] == '"1"'
    first = patch(registry, point, admin, 1, name_uk="Пункт незламності — оновлено")
    assert first.status_code == 200 and first.json()["version"] == 2

    stale = patch(registry, point, admin, 1, capacity=999)
    assert_problem(stale, 412)
    assert stale.headers["etag"] == '"2"'
    missing = registry.patch(path, json={"capacity": 999}, headers=admin)
    assert "If-Match" in assert_problem(missing, 428)["detail"]
    weak = registry.patch(path, json={"capacity": 999}, headers={**admin, "If-Match": 'W/"2"'})
    assert_problem(weak, 412)  # If-Match compares strongly
    now = registry.get(path, headers=admin).json()
    assert now["version"] == 2 and now["capacity"] == POINT["capacity"] and now["name_uk"].endswith("оновлено")

    either = registry.patch(path, json={"capacity": 300}, headers={**admin, "If-Match": '"7", "2"'})
    assert either.status_code == 200 and either.json()["version"] == 3
    anything = registry.patch(path, json={"capacity": 301}, headers={**admin, "If-Match": "*"})
    assert anything.status_code == 200 and anything.json()["version"] == 4
    stale_retire = registry.post(f"{path}/retire", headers={**admin, "If-Match": '"3"'})
    assert_problem(stale_retire, 412)


def test_a_patch_names_what_it_refuses(registry: TestClient, bearer: Bearer) -> None:
    admin = bearer("admin")
    point = new_point(registry, bearer)
    cleared = patch(registry, point, admin, 1, name_uk=None)
    assert "not cleared" in assert_problem(cleared, 422, field="body.name_uk")["detail"]
    assert_problem(patch(registry, point, admin, 1, capacity=10_001), 422, field="body.capacity")
    assert_problem(patch(registry, point, admin, 1, services=["sauna"]), 422, field="body.services.0")
    assert_problem(patch(registry, point, admin, 1, code="X-1"), 422, field="body.code")
    nulls = patch(registry, point, admin, 1, name_en=None, public_phone=None)
    assert nulls.status_code == 200 and nulls.json()["name_en"] is None and nulls.json()["version"] == 2


def test_an_idempotent_create_returns_the_first_result(
    registry: TestClient, bearer: Bearer, settings: RegistrySettings
) -> None:
    body = {**POINT, "katotth": unique_katotth()}
    headers = {**bearer("admin", subject="idem"), "Idempotency-Key": "create-1"}
    first = registry.post("/v1/points", json=body, headers=headers)
    again = registry.post("/v1/points", json={**body, "services": ["charging", "heat"]}, headers=headers)
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json() and again.headers["idempotent-replayed"] == "true"
    assert again.headers["location"] == first.headers["location"]

    other_body = registry.post("/v1/points", json={**body, "capacity": 121}, headers=headers)
    assert "another request" in assert_problem(other_body, 422, field="header.Idempotency-Key")["detail"]
    # Keys are per account: another caller's same key makes its own point.
    other = {**bearer("admin", subject="other"), "Idempotency-Key": "create-1"}
    elsewhere = registry.post("/v1/points", json=body, headers=other)
    assert elsewhere.status_code == 201 and elsewhere.json()["id"] != first.json()["id"]

    # Concurrent retries with one key make one point.
    racing = {**bearer("admin", subject="racer"), "Idempotency-Key": "race-1"}
    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(lambda _: registry.post("/v1/points", json=body, headers=racing), range(4)))
    assert {a.status_code for a in answers} == {201} and len({a.json()["id"] for a in answers}) == 1
    count = sql(settings.database_url, "SELECT count(*) AS n FROM points WHERE katotth = $1", body["katotth"])
    assert count[0]["n"] == 3  # first, elsewhere, racer

    # After a day a key is forgotten: the housekeeping prunes it, and the key may make a new point.
    sql(
        settings.database_url,
        "UPDATE idempotency_keys SET created_at = now() - interval '25 hours' WHERE key = 'create-1'",
    )
    renewed = registry.post("/v1/points", json={**body, "capacity": 121}, headers=headers)
    assert renewed.status_code == 201 and renewed.json()["id"] != first.json()["id"]
    assert_problem(registry.post("/v1/points", json=body, headers={**headers, "Idempotency-Key": "a b"}), 422)


def test_expired_idempotency_keys_are_pruned(registry: TestClient, bearer: Bearer, settings: RegistrySettings) -> None:
    import asyncio

    from poi_registry.points.service import prune_idempotency_keys
    from poi_shared import db

    headers = {**bearer("admin", subject="pruned"), "Idempotency-Key": "old-key"}
    assert registry.post("/v1/points", json={**POINT, "katotth": unique_katotth()}, headers=headers).status_code == 201
    sql(
        settings.database_url,
        "UPDATE idempotency_keys SET created_at = now() - interval '2 days' WHERE key = 'old-key'",
    )

    async def prune() -> int:
        pool = await db.create_pool(settings.database_url, timeout_s=10)
        try:
            return await prune_idempotency_keys(pool, ttl_s=settings.idempotency_ttl_s)
        finally:
            await pool.close()

    assert asyncio.run(prune()) >= 1
    assert not sql(settings.database_url, "SELECT 1 FROM idempotency_keys WHERE key = 'old-key'")


@pytest.mark.parametrize(
    ("changes", "scope"),
    [
        ({"lat": 0, "lon": 0}, ["UA80"]),
        ({"lat": 49.8397, "lon": 24.0297, "katotth": "UA32000000000000001"}, ["UA32"]),  # Lviv, coded Kyiv oblast
        ({"lat": 52.52, "lon": 13.405}, ["UA80"]),  # Berlin: foreign points are out of scope for now
    ],
    ids=["null-island", "lviv-as-kyiv-oblast", "berlin"],
)
def test_a_point_outside_its_oblast_is_refused(
    registry: TestClient, bearer: Bearer, settings: RegistrySettings, changes: dict[str, Any], scope: list[str]
) -> None:
    before = sql(settings.database_url, "SELECT count(*) AS n FROM points")[0]["n"]
    response = registry.post("/v1/points", json={**POINT, **changes}, headers=bearer("coordinator", katotth=scope))
    problem = assert_problem(response, 422, field="body.lat")
    assert "body.lon" in [e["location"] for e in problem["errors"]] and "km outside" in problem["detail"]
    assert sql(settings.database_url, "SELECT count(*) AS n FROM points")[0]["n"] == before


def test_moving_a_point_out_of_its_oblast_is_refused(registry: TestClient, bearer: Bearer) -> None:
    admin = bearer("admin")
    point = new_point(registry, bearer)
    moved = patch(registry, point, admin, 1, katotth="UA46000000000000001")
    assert "outside Lviv oblast (UA46)" in assert_problem(moved, 422, field="body.katotth")["detail"]
    lviv = patch(registry, point, admin, 1, lat=49.8397, lon=24.0297, katotth="UA46000000000000001")
    assert lviv.status_code == 200 and lviv.json()["katotth"] == "UA46000000000000001"


def test_lists_filter_page_and_count(registry: TestClient, bearer: Bearer) -> None:
    hromada = unique_katotth()[:9]
    codes = []
    for n in range(5):
        point = new_point(
            registry,
            bearer,
            katotth=f"{hromada}{n:010d}",
            category="business" if n % 2 else "state",
            services=["heat", "toilets"] if n < 3 else ["charging"],
        )
        codes.append(point["code"])
    new_point(registry, bearer, katotth=f"{hromada}{9:010d}", visibility="hidden")
    page = registry.get("/v1/points", params={"katotth": hromada, "limit": 2}).json()
    assert page["total"] == 5 and [p["code"] for p in page["items"]] == sorted(codes)[:2]
    assert all(p["view"] == "public" and "contact_phone" not in p for p in page["items"])
    seen = [p["code"] for p in page["items"]]
    while page["next_cursor"]:
        page = registry.get("/v1/points", params={"katotth": hromada, "limit": 2, "cursor": page["next_cursor"]}).json()
        seen += [p["code"] for p in page["items"]]
    assert seen == sorted(codes)

    def total(**params: Any) -> int:
        response = registry.get("/v1/points", params={"katotth": hromada, **params})
        assert response.status_code == 200, response.text
        return response.json()["total"]

    assert total(category="state") == 3 and total(service=["heat", "toilets"]) == 3 and total(service="charging") == 2
    assert total(visibility="hidden") == 0
    coordinator = registry.get(
        "/v1/points", params={"katotth": hromada}, headers=bearer("coordinator", katotth=[hromada])
    )
    coordinator = coordinator.json()
    assert coordinator["total"] == 6 and {p["view"] for p in coordinator["items"]} == {"private"}
    first = registry.get("/v1/points", params={"katotth": hromada}).json()["items"][0]
    registry.post(f"/v1/points/{first['id']}/retire", headers=bearer("admin"))
    assert total() == 4 and total(lifecycle="retired") == 1 and total(lifecycle="all") == 5
    assert total(changed_since="2100-01-01T00:00:00Z") == 0 and total(changed_since=first["updated_at"]) == 4
    assert_problem(registry.get("/v1/points", params={"cursor": "bm90LWEtY3Vyc29y"}), 422, field="query.cursor")
    assert_problem(registry.get("/v1/points", params={"limit": 501}), 422, field="query.limit")
    assert_problem(registry.get("/v1/points", params={"katotth": "80"}), 422, field="query.katotth")
    assert_problem(registry.get("/v1/points", params={"changed_since": "2026-01-01T00:00:00"}), 422)
