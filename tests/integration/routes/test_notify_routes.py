"""Notify's admin route: 2xx for admins, 401, 403, and 422 for every bad parameter (64-bit bounds included)."""

from typing import Any

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


# --- Coordinator contacts ---


def test_admin_registers_lists_and_removes_a_contact(notify_client: TestClient, bearer: Bearer) -> None:
    admin = bearer("admin")
    body = {"phone": "067 123 45 67", "katotth_prefix": "UA4606", "language": "en"}
    created = notify_client.post("/v1/contacts", json=body, headers=admin)
    assert created.status_code == 201, created.text
    contact = created.json()
    assert contact["phone"] == "+38067*****67" and contact["katotth_prefix"] == "UA4606"
    assert created.headers["location"] == f"/v1/contacts/{contact['id']}"
    again = notify_client.post("/v1/contacts", json={**body, "phone": "+380671234567"}, headers=admin)
    assert again.status_code == 201 and again.json()["id"] == contact["id"]
    listed = notify_client.get("/v1/contacts", params={"katotth_prefix": "UA46"}, headers=admin).json()
    assert contact["id"] in [c["id"] for c in listed["items"]]
    assert "1234567" not in str(listed)
    other = notify_client.get("/v1/contacts", params={"katotth_prefix": "UA80"}, headers=admin).json()
    assert contact["id"] not in [c["id"] for c in other["items"]]
    assert notify_client.delete(f"/v1/contacts/{contact['id']}", headers=admin).status_code == 204
    assert_problem(notify_client.delete(f"/v1/contacts/{contact['id']}", headers=admin), 404)


def test_contacts_need_an_admin_token(notify_client: TestClient, bearer: Bearer) -> None:
    body = {"phone": "+380671234567", "katotth_prefix": "UA80"}
    assert_problem(notify_client.post("/v1/contacts", json=body), 401)
    assert_problem(notify_client.get("/v1/contacts"), 401)
    coordinator = bearer("coordinator", katotth=["UA80"])
    assert "admin" in assert_problem(notify_client.post("/v1/contacts", json=body, headers=coordinator), 403)["detail"]
    assert_problem(notify_client.get("/v1/contacts", headers=coordinator), 403)
    assert_problem(notify_client.delete(f"/v1/contacts/{random_point_id()}", headers=coordinator), 403)


@pytest.mark.parametrize(
    ("body", "location"),
    [
        ({"phone": "+380441234567", "katotth_prefix": "UA80"}, "body.phone"),  # a Kyiv landline
        ({"phone": "12", "katotth_prefix": "UA80"}, "body.phone"),
        ({"phone": "+38067123456\n7", "katotth_prefix": "UA80"}, "body.phone"),
        ({"phone": "+380671234567", "katotth_prefix": "UA8"}, "body.katotth_prefix"),
        ({"phone": "+380671234567", "katotth_prefix": "UA80", "language": "de"}, "body.language"),
        ({"phone": 380671234567, "katotth_prefix": "UA80"}, "body.phone"),
        ({"katotth_prefix": "UA80"}, "body.phone"),
    ],
    ids=["landline", "short", "control-char", "prefix-cut", "language", "number-type", "missing-phone"],
)
def test_bad_contacts_are_422_and_change_nothing(
    notify_client: TestClient, bearer: Bearer, body: dict[str, Any], location: str
) -> None:
    admin = bearer("admin")
    before = notify_client.get("/v1/contacts", params={"limit": 200}, headers=admin).json()["items"]
    assert_problem(notify_client.post("/v1/contacts", json=body, headers=admin), 422, field=location)
    assert notify_client.get("/v1/contacts", params={"limit": 200}, headers=admin).json()["items"] == before


@pytest.mark.parametrize(
    ("params", "location"),
    [
        ({"limit": 0}, "query.limit"),
        ({"after": "x"}, "query.after"),
        ({"katotth_prefix": "80"}, "query.katotth_prefix"),
    ],
    ids=["limit", "after", "prefix"],
)
def test_bad_contact_list_parameters_are_422(
    notify_client: TestClient, bearer: Bearer, params: dict[str, Any], location: str
) -> None:
    assert_problem(notify_client.get("/v1/contacts", params=params, headers=bearer("admin")), 422, field=location)
