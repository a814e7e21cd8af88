"""Every endpoint's role matrix: each forbidden (role, action) pair is 403 (401 without a token) and changes nothing."""

import uuid
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from poi_registry.settings import RegistrySettings
from tests.integration.registry.conftest import Bearer, new_point, sql, unique_katotth
from tests.integration.routes.conftest import POINT

pytestmark = pytest.mark.integration

ROLES: dict[str, Callable[[str, str], dict[str, Any] | None]] = {
    "admin": lambda point_id, area: {"roles": ["admin"]},
    "coordinator": lambda point_id, area: {"roles": ["coordinator"], "katotth": [area]},
    "coordinator-elsewhere": lambda point_id, area: {"roles": ["coordinator"], "katotth": ["UA46"]},
    "operator": lambda point_id, area: {"roles": ["operator"], "points": [point_id]},
    "operator-elsewhere": lambda point_id, area: {"roles": ["operator"], "points": [str(uuid.uuid4())]},
    "integrator": lambda point_id, area: {"roles": ["integrator"]},
    "anonymous": lambda point_id, area: None,
}
STAFF = {"admin", "coordinator"}
ALLOWED: dict[str, set[str]] = {
    "register": STAFF,
    "change-name": STAFF,
    "change-services": STAFF | {"operator"},
    "change-phones": STAFF | {"operator"},
    "retire": STAFF,
    "restore": STAFF,
    "history": STAFF,
    "import": STAFF,
    "read-policies": STAFF | {"coordinator-elsewhere"},
    "set-policy": {"admin"},
}


def act(action: str, client: TestClient, point: dict[str, Any], headers: dict[str, str]) -> httpx.Response:
    """Do the action on the point (or its area) as the caller."""
    path = f"/v1/points/{point['id']}"
    if_match = {**headers, "If-Match": f'"{point["version"]}"'}
    if action == "register":
        return client.post("/v1/points", json={**POINT, "katotth": point["katotth"]}, headers=headers)
    if action == "change-name":
        return client.patch(path, json={"name_uk": "Інша назва"}, headers=if_match)
    if action == "change-services":
        return client.patch(path, json={"services": ["heat"], "schedule": {"kind": "always"}}, headers=if_match)
    if action == "change-phones":
        return client.patch(path, json={"public_phone": "+380441112233"}, headers=if_match)
    if action in ("retire", "restore"):
        return client.post(f"{path}/{action}", headers=headers)
    if action == "history":
        return client.get(f"{path}/history", headers=headers)
    if action == "import":
        csv = (
            "code,name_uk,category,lat,lon,katotth,address_uk,settlement,capacity\n"
            f'R-{point["id"][:8].upper()},Пункт,state,50.45,30.52,{point["katotth"]},"вул. Тиха, 1",Київ,50\n'
        )
        return client.post("/v1/points/import", content=csv, headers={**headers, "content-type": "text/csv"})
    if action == "read-policies":
        return client.get("/v1/oblast-policies", headers=headers)
    assert action == "set-policy"
    return client.put("/v1/oblast-policies/UA07", json={"visibility": "public"}, headers=headers)


def state(url: str, point: dict[str, Any]) -> tuple[Any, ...]:
    """What any action could change: the point, its area's points, history, policies, idempotency keys."""
    row = sql(url, "SELECT version, retired_at FROM points WHERE id = $1", uuid.UUID(point["id"]))[0]
    counts = sql(
        url,
        """SELECT (SELECT count(*) FROM points WHERE katotth LIKE $1 || '%') AS area,
                  (SELECT count(*) FROM point_history) AS history,
                  (SELECT count(*) FROM oblast_policies) AS policies""",
        point["katotth"][:9],
    )[0]
    return (row["version"], row["retired_at"], counts["area"], counts["history"], counts["policies"])


@pytest.mark.parametrize("action", list(ALLOWED))
@pytest.mark.parametrize("role", list(ROLES))
def test_role_matrix(registry: TestClient, bearer: Bearer, settings: RegistrySettings, role: str, action: str) -> None:
    point = new_point(registry, bearer, katotth=unique_katotth(), contact_phone="+380501234567")
    claims = ROLES[role](point["id"], point["katotth"][:9])
    headers = bearer(*claims.pop("roles"), **claims) if claims is not None else {}
    if action == "restore":
        retired = registry.post(f"/v1/points/{point['id']}/retire", headers=bearer("admin"))
        point = retired.json()
    before = state(settings.database_url, point)
    response = act(action, registry, point, headers)
    if role in ALLOWED[action]:
        assert response.status_code in (200, 201), response.text
        return
    assert response.status_code == (401 if role == "anonymous" else 403), response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert state(settings.database_url, point) == before


def test_operators_are_told_which_fields_they_may_not_change(registry: TestClient, bearer: Bearer) -> None:
    point = new_point(registry, bearer)
    operator = {**bearer("operator", points=[point["id"]]), "If-Match": '"1"'}
    response = registry.patch(
        f"/v1/points/{point['id']}", json={"capacity": 10, "services": ["heat"], "lat": 50.1}, headers=operator
    )
    assert response.status_code == 403
    detail = response.json()["detail"]
    assert "capacity, lat" in detail and "contact_phone, public_phone, schedule, services" in detail
    own = registry.patch(f"/v1/points/{point['id']}", json={"contact_phone": "+380671112233"}, headers=operator)
    assert own.status_code == 200 and own.json()["version"] == 2


def test_each_role_reads_the_view_it_may(registry: TestClient, bearer: Bearer) -> None:
    point = new_point(registry, bearer, contact_phone="+380501234567", visibility="coarse")
    path = f"/v1/points/{point['id']}"
    area = point["katotth"][:9]
    views = {
        "anonymous": registry.get(path).json(),
        "integrator": registry.get(path, headers=bearer("integrator")).json(),
        "coordinator-elsewhere": registry.get(path, headers=bearer("coordinator", katotth=["UA46"])).json(),
        "operator": registry.get(path, headers=bearer("operator", points=[point["id"]])).json(),
        "coordinator": registry.get(path, headers=bearer("coordinator", katotth=[area])).json(),
        "admin": registry.get(path, headers=bearer("admin")).json(),
    }
    for role in ("anonymous", "integrator", "coordinator-elsewhere"):
        view = views[role]
        assert view["view"] == "public" and view["exact_location"] is False, role
        assert view["address_uk"] == POINT["settlement"] and "contact_phone" not in view and "visibility" not in view
    assert views["operator"]["view"] == "private" and views["operator"]["contact_phone"] is None
    assert views["operator"]["address_uk"] == POINT["address_uk"]
    for role in ("coordinator", "admin"):
        view = views[role]
        assert view["contact_phone"] == "+380501234567" and view["lat"] == POINT["lat"], role
        assert (view["visibility"], view["oblast_visibility"], view["effective_visibility"]) == (
            "coarse",
            None,
            "coarse",
        )
