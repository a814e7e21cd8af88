"""Status routes: each one's 2xx, 401, 403, 404, 409, 413 and 422, and who may call what (the role matrix)."""

import asyncio
import json
import uuid
from typing import Any

import asyncpg
import pytest
from fastapi.testclient import TestClient

from tests.integration.routes.conftest import (
    Bearer,
    assert_problem,
    eventually,
    known_to_status,
    random_point_id,
    register_point,
)

pytestmark = pytest.mark.integration


@pytest.fixture
def point(registry_client: TestClient, status_client: TestClient, bearer: Bearer) -> dict[str, Any]:
    """A point in Kyiv (capacity 120, heat and charging) that status already knows."""
    registered = register_point(registry_client, bearer)
    known_to_status(status_client, registered["id"])
    return registered


def count_reports(database_urls: dict[str, str], point_id: str) -> int:
    """How many versions status holds for the point."""

    async def count() -> int:
        conn = await asyncpg.connect(database_urls["status"])
        try:
            return int(
                await conn.fetchval("SELECT count(*) FROM status_reports WHERE point_id = $1", uuid.UUID(point_id))
            )
        finally:
            await conn.close()

    return asyncio.run(count())


def test_a_point_never_reported_is_unknown(status_client: TestClient, point: dict[str, Any]) -> None:
    response = status_client.get(f"/v1/points/{point['id']}/status")
    assert response.status_code == 200
    assert response.json() == {
        "point_id": point["id"],
        "version": 0,
        "state": "unknown",
        "previous_state": None,
        "cause": None,
        "services": {},
        "power": None,
        "fuel_hours": None,
        "low_fuel": False,
        "internet": None,
        "occupancy": None,
        "capacity": None,
        "note": None,
        "reported_at": None,
        "changed_at": None,
        "age_s": None,
    }


def test_operator_reports_on_own_point_whatever_the_case_of_its_id(
    status_client: TestClient, bearer: Bearer, point: dict[str, Any]
) -> None:
    operator = bearer("operator", points=[point["id"].upper()])
    response = status_client.post(
        f"/v1/points/{point['id']}/status",
        json={"state": "open", "note": "генератор\nпрацює", "services": {"heat": True}, "occupancy": 30},
        headers=operator,
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert (body["state"], body["version"], body["capacity"], body["occupancy"]) == ("open", 1, 120, 30)
    read = status_client.get(f"/v1/points/{point['id']}/status").json()
    assert read["state"] == "open" and read["note"] == "генератор\nпрацює" and read["services"]["heat"]["available"]
    # The path may spell the id in upper case too: it is a UUID either way.
    again = status_client.post(f"/v1/points/{point['id'].upper()}/status", json={"state": "closed"}, headers=operator)
    assert again.status_code == 201 and again.json()["version"] == 2


@pytest.mark.parametrize(
    ("roles", "scope"),
    [(["coordinator"], {"katotth": ["UA80"]}), (["coordinator"], {"katotth": ["UA8000"]}), (["admin"], {})],
    ids=["oblast-coordinator", "raion-coordinator", "admin"],
)
def test_the_areas_coordinator_and_admins_report(
    status_client: TestClient, bearer: Bearer, point: dict[str, Any], roles: list[str], scope: dict[str, list[str]]
) -> None:
    response = status_client.post(
        f"/v1/points/{point['id']}/status", json={"state": "closed"}, headers=bearer(*roles, **scope)
    )
    assert response.status_code == 201, response.text


def test_reporting_needs_a_valid_token(
    status_client: TestClient, point: dict[str, Any], database_urls: dict[str, str]
) -> None:
    path = f"/v1/points/{point['id']}/status"
    assert_problem(status_client.post(path, json={"state": "open"}), 401)
    assert_problem(status_client.post(path, json={"state": "open"}, headers={"Authorization": "Bearer x.y.z"}), 401)
    assert count_reports(database_urls, point["id"]) == 0


@pytest.mark.parametrize(
    ("roles", "scope"),
    [
        (["operator"], {"points": ["00000000-0000-4000-8000-000000000000"]}),
        (["coordinator"], {"katotth": ["UA32"]}),
        (["integrator"], {}),
    ],
    ids=["other-operator", "other-coordinator", "integrator"],
)
def test_reporting_on_someone_elses_point_is_forbidden(
    status_client: TestClient,
    bearer: Bearer,
    point: dict[str, Any],
    database_urls: dict[str, str],
    roles: list[str],
    scope: dict[str, list[str]],
) -> None:
    response = status_client.post(
        f"/v1/points/{point['id']}/status", json={"state": "open"}, headers=bearer(*roles, **scope)
    )
    assert_problem(response, 403)
    assert count_reports(database_urls, point["id"]) == 0


def test_reporting_on_an_unknown_point_is_404(status_client: TestClient, bearer: Bearer) -> None:
    response = status_client.post(
        f"/v1/points/{random_point_id()}/status", json={"state": "open"}, headers=bearer("admin")
    )
    assert_problem(response, 404)
    assert_problem(status_client.get(f"/v1/points/{random_point_id()}/status"), 404)


def test_reporting_on_a_retired_point_is_409_and_it_is_gone_from_reads(
    status_client: TestClient, bearer: Bearer, database_urls: dict[str, str]
) -> None:
    point_id = random_point_id()

    async def retired_point() -> None:
        # Status learns of retired points from the registry's events, as written here.
        conn = await asyncpg.connect(database_urls["status"])
        try:
            await conn.execute(
                "INSERT INTO known_points (id, version, katotth, retired) VALUES ($1, 2, $2, true)",
                uuid.UUID(point_id),
                "UA80000000000093317",
            )
            await conn.execute(
                "INSERT INTO point_status (point_id, version, state) VALUES ($1, 0, 'unknown')", uuid.UUID(point_id)
            )
        finally:
            await conn.close()

    asyncio.run(retired_point())
    response = status_client.post(f"/v1/points/{point_id}/status", json={"state": "open"}, headers=bearer("admin"))
    assert "retired" in assert_problem(response, 409)["detail"]
    assert count_reports(database_urls, point_id) == 0
    assert_problem(status_client.get(f"/v1/points/{point_id}/status"), 404)


@pytest.mark.parametrize(
    ("body", "location"),
    [
        ({"state": "open", "note": "генератор\x00працює"}, "body.note"),
        ({"state": "open", "note": "генератор\x07"}, "body.note"),
        ({"state": "unknown"}, "body.state"),
        ({"state": None}, "body.state"),
        ({"state": 1}, "body.state"),
        ({"state": "open", "note": 5}, "body.note"),
        ({"state": "open", "note": "x" * 501}, "body.note"),
        ({"state": "open", "colour": "red"}, "body.colour"),
        ({"state": "open", "power": "solar"}, "body.power"),
        ({"state": "open", "internet": "dial-up"}, "body.internet"),
        ({"state": "open", "fuel_hours": -1}, "body.fuel_hours"),
        ({"state": "open", "fuel_hours": 5000}, "body.fuel_hours"),
        ({"state": "open", "fuel_hours": "5"}, "body.fuel_hours"),
        ({"state": "open", "occupancy": -3}, "body.occupancy"),
        ({"state": "open", "occupancy": 10**12}, "body.occupancy"),
        ({"state": "open", "occupancy": 241}, "body.occupancy"),
        ({"state": "open", "occupancy": 2.5}, "body.occupancy"),
        ({"state": "open", "served": -1}, "body.served"),
        ({"state": "open", "services": {"teleport": True}}, "body.services.teleport.[key]"),
        ({"state": "open", "services": {"heat": "yes"}}, "body.services.heat"),
        ({"state": "open", "services": {"water": True}}, "body.services.water"),
        ({"occupancy": 10}, "body.state"),
        ({}, "body.state"),
    ],
    ids=[
        "nul-note",
        "bell-note",
        "derived-state",
        "null-state",
        "state-number",
        "note-number",
        "note-long",
        "unknown-field",
        "unknown-power",
        "unknown-internet",
        "negative-fuel",
        "absurd-fuel",
        "fuel-string",
        "negative-occupancy",
        "absurd-occupancy",
        "occupancy-beyond-capacity",
        "occupancy-fraction",
        "negative-served",
        "unknown-service",
        "service-not-bool",
        "service-not-offered",
        "first-report-without-state",
        "empty-first-report",
    ],
)
def test_bad_reports_are_refused_naming_the_field(
    status_client: TestClient,
    bearer: Bearer,
    point: dict[str, Any],
    database_urls: dict[str, str],
    body: dict[str, Any],
    location: str,
) -> None:
    response = status_client.post(
        f"/v1/points/{point['id']}/status",
        content=json.dumps(body),
        headers={**bearer("admin"), "content-type": "application/json"},
    )
    assert_problem(response, 422, field=location)
    assert count_reports(database_urls, point["id"]) == 0


def test_a_report_over_the_small_size_limit_is_413(
    status_client: TestClient, bearer: Bearer, point: dict[str, Any], database_urls: dict[str, str]
) -> None:
    padded = '{"state": "open"' + " " * 5000 + "}"
    response = status_client.post(
        f"/v1/points/{point['id']}/status",
        content=padded,
        headers={**bearer("admin"), "content-type": "application/json"},
    )
    assert "4096" in assert_problem(response, 413)["detail"]
    assert count_reports(database_urls, point["id"]) == 0


def test_an_idempotency_key_must_be_printable_ascii(
    status_client: TestClient, bearer: Bearer, point: dict[str, Any]
) -> None:
    response = status_client.post(
        f"/v1/points/{point['id']}/status",
        json={"state": "open"},
        headers={**bearer("admin"), "Idempotency-Key": "a key with spaces"},
    )
    assert_problem(response, 422, field="header.Idempotency-Key")


def test_malformed_point_id_is_422(status_client: TestClient, bearer: Bearer) -> None:
    assert_problem(status_client.get("/v1/points/42/status"), 422, field="path.point_id")
    response = status_client.post("/v1/points/42/status", json={"state": "open"}, headers=bearer("admin"))
    assert_problem(response, 422, field="path.point_id")


def test_many_statuses_at_once(
    status_client: TestClient, registry_client: TestClient, bearer: Bearer, point: dict[str, Any]
) -> None:
    hidden = register_point(registry_client, bearer, visibility="hidden")
    # Its operator reports as soon as status knows it; the public never sees it.
    eventually(
        lambda: (
            status_client.post(
                f"/v1/points/{hidden['id']}/status", json={"state": "open"}, headers=bearer("admin")
            ).status_code
            == 201
        ),
        "status learns the hidden point",
    )
    unknown = random_point_id()
    response = status_client.get("/v1/status/points", params={"ids": [point["id"], hidden["id"], unknown]})
    assert response.status_code == 200, response.text
    assert [i["point_id"] for i in response.json()["items"]] == [point["id"]]
    assert set(response.json()["missing"]) == {hidden["id"], unknown}
    assert_problem(status_client.get(f"/v1/points/{hidden['id']}/status"), 404)
    assert_problem(status_client.get("/v1/status/points"), 422, field="query.ids")
    assert_problem(status_client.get("/v1/status/points", params={"ids": ["42"]}), 422, field="query.ids.0")
    too_many = [random_point_id() for _ in range(101)]
    assert_problem(status_client.get("/v1/status/points", params={"ids": too_many}), 422, field="query.ids")


COORDINATOR_ROUTES = [
    ("POST", "/v1/status/areas/activate", {"katotth": ["UA80"]}),
    ("POST", "/v1/status/areas/deactivate", {"katotth": ["UA80"]}),
    ("GET", "/v1/status/lists/stale", None),
    ("GET", "/v1/status/lists/low_fuel", None),
    ("GET", "/v1/status/lists/full", None),
    ("GET", "/v1/status/stats/states", None),
    ("GET", "/v1/status/stats/visitors", None),
]


@pytest.mark.parametrize(("method", "path", "body"), COORDINATOR_ROUTES, ids=[r[1] for r in COORDINATOR_ROUTES])
@pytest.mark.parametrize(
    ("roles", "scope", "expected"),
    [
        ([], {}, 401),
        (["operator"], {"points": ["00000000-0000-4000-8000-000000000000"]}, 403),
        (["integrator"], {}, 403),
        (["coordinator"], {"katotth": ["UA32"]}, 403),
        (["coordinator"], {"katotth": ["UA80"]}, 200),
        (["coordinator"], {"katotth": ["UA32", "UA80"]}, 200),
        (["admin"], {}, 200),
    ],
    ids=["anonymous", "operator", "integrator", "other-coordinator", "coordinator", "two-area-coordinator", "admin"],
)
def test_the_role_matrix_of_coordinators_routes(
    status_client: TestClient,
    bearer: Bearer,
    method: str,
    path: str,
    body: dict[str, Any] | None,
    roles: list[str],
    scope: dict[str, list[str]],
    expected: int,
) -> None:
    headers = bearer(*roles, **scope) if roles else {}
    params = {"katotth": "UA80"} if method == "GET" else None
    response = status_client.request(method, path, json=body, params=params, headers=headers)
    if expected == 200:
        assert response.status_code == 200, response.text
    else:
        assert_problem(response, expected)


@pytest.mark.parametrize(
    ("method", "path", "request_args", "location"),
    [
        ("POST", "/v1/status/areas/activate", {"json": {"katotth": ["UA8"]}}, "body.katotth.0"),
        ("POST", "/v1/status/areas/activate", {"json": {"katotth": []}}, "body.katotth"),
        ("POST", "/v1/status/areas/activate", {"json": {"katotth": ["UA80"], "state": "closed"}}, "body.state"),
        ("POST", "/v1/status/areas/activate", {"json": {"katotth": ["UA80"], "category": "x"}}, "body.category"),
        ("POST", "/v1/status/areas/deactivate", {"json": {"katotth": ["UA80"], "state": "open"}}, "body.state"),
        ("GET", "/v1/status/lists/empty", {}, "path.kind"),
        ("GET", "/v1/status/lists/stale", {"params": {"limit": 201}}, "query.limit"),
        ("GET", "/v1/status/lists/stale", {"params": {"cursor": "%%%"}}, "query.cursor"),
        ("GET", "/v1/status/lists/stale", {"params": {"katotth": "Kyiv"}}, "query.katotth"),
        ("GET", "/v1/status/stats/states", {"params": {"by": "street"}}, "query.by"),
        ("GET", "/v1/status/stats/visitors", {"params": {"since": "2026-02-01", "until": "2026-01-01"}}, "query.since"),
        ("GET", "/v1/status/stats/visitors", {"params": {"since": "yesterday"}}, "query.since"),
    ],
)
def test_coordinators_routes_refuse_bad_input_naming_it(
    status_client: TestClient,
    bearer: Bearer,
    method: str,
    path: str,
    request_args: dict[str, Any],
    location: str,
) -> None:
    response = status_client.request(method, path, headers=bearer("admin"), **request_args)
    assert_problem(response, 422, field=location)


def test_the_feed_refuses_a_bad_resume_point(status_client: TestClient) -> None:
    assert_problem(
        status_client.get("/v1/status/feed", headers={"Last-Event-ID": "-1"}), 422, field="header.Last-Event-ID"
    )
    assert_problem(status_client.get("/v1/status/feed", params={"katotth": "UA8x"}), 422, field="query.katotth")
