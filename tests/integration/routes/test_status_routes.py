"""Status routes: each one's 2xx, 401, 403, 404, 409 and 422; operator ids compare as UUIDs."""

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
    known_to_status,
    random_point_id,
    register_point,
)

pytestmark = pytest.mark.integration


@pytest.fixture
def point(registry_client: TestClient, status_client: TestClient, bearer: Bearer) -> dict[str, Any]:
    """A point in Kyiv that status already knows."""
    registered = register_point(registry_client, bearer)
    known_to_status(status_client, registered["id"])
    return registered


def count_reports(database_urls: dict[str, str], point_id: str) -> int:
    """How many reports status holds for the point."""

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
        "state": "unknown",
        "version": 0,
        "note": None,
        "reported_at": None,
    }


def test_operator_reports_on_own_point_whatever_the_case_of_its_id(
    status_client: TestClient, bearer: Bearer, point: dict[str, Any]
) -> None:
    operator = bearer("operator", points=[point["id"].upper()])
    response = status_client.post(
        f"/v1/points/{point['id']}/status", json={"state": "open", "note": "генератор\nпрацює"}, headers=operator
    )
    assert response.status_code == 201, response.text
    assert response.json()["state"] == "open" and response.json()["version"] == 1
    read = status_client.get(f"/v1/points/{point['id']}/status").json()
    assert read["state"] == "open" and read["note"] == "генератор\nпрацює"
    # The path may spell the id in upper case too: it is a UUID either way.
    again = status_client.post(f"/v1/points/{point['id'].upper()}/status", json={"state": "closed"}, headers=operator)
    assert again.status_code == 201 and again.json()["version"] == 2


def test_coordinator_of_the_area_reports(status_client: TestClient, bearer: Bearer, point: dict[str, Any]) -> None:
    response = status_client.post(
        f"/v1/points/{point['id']}/status", json={"state": "closed"}, headers=bearer("coordinator", katotth=["UA80"])
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


def test_reporting_on_a_retired_point_is_409(
    status_client: TestClient, bearer: Bearer, database_urls: dict[str, str]
) -> None:
    point_id = random_point_id()

    async def retired_point() -> None:
        # The registry cannot retire points yet; status learns of retired ones from its events, as written here.
        conn = await asyncpg.connect(database_urls["status"])
        try:
            await conn.execute(
                "INSERT INTO known_points (id, version, katotth, retired) VALUES ($1, 2, $2, true)",
                uuid.UUID(point_id),
                "UA80000000000093317",
            )
        finally:
            await conn.close()

    asyncio.run(retired_point())
    response = status_client.post(f"/v1/points/{point_id}/status", json={"state": "open"}, headers=bearer("admin"))
    assert "retired" in assert_problem(response, 409)["detail"]
    assert count_reports(database_urls, point_id) == 0


@pytest.mark.parametrize(
    ("body", "location"),
    [
        ({"state": "open", "note": "генератор\x00працює"}, "body.note"),
        ({"state": "open", "note": "генератор\x07"}, "body.note"),
        ({"state": "unknown"}, "body.state"),
        ({"state": 1}, "body.state"),
        ({"state": "open", "note": 5}, "body.note"),
        ({"state": "open", "note": "x" * 501}, "body.note"),
        ({"state": "open", "occupancy": 3}, "body.occupancy"),
        ({}, "body.state"),
    ],
    ids=[
        "nul-note",
        "bell-note",
        "derived-state",
        "state-number",
        "note-number",
        "note-long",
        "unknown-field",
        "empty",
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


def test_malformed_point_id_is_422(status_client: TestClient, bearer: Bearer) -> None:
    assert_problem(status_client.get("/v1/points/42/status"), 422, field="path.point_id")
    response = status_client.post("/v1/points/42/status", json={"state": "open"}, headers=bearer("admin"))
    assert_problem(response, 422, field="path.point_id")
