"""Notify's admin route: 2xx for admins, 401, 403, and 422 for every bad parameter (64-bit bounds included)."""

from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.integration.routes.conftest import Bearer, assert_problem, eventually, known_to_status, register_point

pytestmark = pytest.mark.integration


def test_admin_lists_a_points_observations(
    notify_client: TestClient, status_client: TestClient, registry_client: TestClient, bearer: Bearer
) -> None:
    point = register_point(registry_client, bearer)
    known_to_status(status_client, point["id"])
    for state in ("open", "closed"):
        reported = status_client.post(
            f"/v1/points/{point['id']}/status", json={"state": state}, headers=bearer("admin")
        )
        assert reported.status_code == 201, reported.text

    def page(**params: Any) -> dict[str, Any]:
        response = notify_client.get(
            "/v1/observations", params={"point_id": point["id"], **params}, headers=bearer("admin")
        )
        assert response.status_code == 200, response.text
        return response.json()

    eventually(lambda: len(page()["items"]) == 2, "notify observes both reports")
    first = page(limit=1)
    assert [o["state"] for o in first["items"]] == ["open"] and first["next_after_version"] == 1
    rest = page(after_version=first["next_after_version"])
    assert [o["version"] for o in rest["items"]] == [2] and rest["next_after_version"] is None
    assert page(after_version=2**63 - 1)["items"] == []


def test_observations_need_an_admin_token(notify_client: TestClient, bearer: Bearer) -> None:
    params = {"point_id": "00000000-0000-4000-8000-000000000000"}
    assert_problem(notify_client.get("/v1/observations", params=params), 401)
    forbidden = notify_client.get("/v1/observations", params=params, headers=bearer("coordinator", katotth=["UA80"]))
    assert "admin" in assert_problem(forbidden, 403)["detail"]


@pytest.mark.parametrize(
    ("params", "location"),
    [
        ({"after_version": 2**63}, "query.after_version"),
        ({"after_version": -1}, "query.after_version"),
        ({"after_version": "1.5"}, "query.after_version"),
        ({"limit": 201}, "query.limit"),
        ({"limit": 2**64}, "query.limit"),
        ({"point_id": "p-1"}, "query.point_id"),
        ({"point_id": None}, "query.point_id"),
    ],
    ids=["after-2**63", "after-negative", "after-fraction", "limit-over", "limit-2**64", "point-id", "no-point-id"],
)
def test_bad_parameters_are_422_naming_them(
    notify_client: TestClient, bearer: Bearer, params: dict[str, Any], location: str
) -> None:
    query = {"point_id": "00000000-0000-4000-8000-000000000000", **params}
    query = {k: v for k, v in query.items() if v is not None}
    response = notify_client.get("/v1/observations", params=query, headers=bearer("admin"))
    assert_problem(response, 422, field=location)
