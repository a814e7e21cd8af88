"""Registry routes: each one's 2xx, 401, 403, 404 and 422, bad bodies refused with nothing stored."""

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import asyncpg
import pytest
from fastapi.testclient import TestClient

from poi_shared.models import MAX_BODY_BYTES
from tests.integration.routes.conftest import POINT, Bearer, assert_problem, random_point_id, register_point

pytestmark = pytest.mark.integration


def count_points(database_urls: dict[str, str]) -> int:
    """How many points the registry's database holds."""

    async def count() -> int:
        conn = await asyncpg.connect(database_urls["registry"])
        try:
            return int(await conn.fetchval("SELECT count(*) FROM points"))
        finally:
            await conn.close()

    return asyncio.run(count())


def test_coordinator_registers_a_point_in_their_area(registry_client: TestClient, bearer: Bearer) -> None:
    response = registry_client.post("/v1/points", json=POINT, headers=bearer("coordinator", katotth=["UA80"]))
    assert response.status_code == 201, response.text
    point = response.json()
    assert response.headers["location"] == f"/v1/points/{point['id']}"
    assert point["version"] == 1 and point["name_uk"] == POINT["name_uk"] and point["code"].startswith("80-")
    assert point["view"] == "private" and response.headers["etag"] == '"1"'
    read = registry_client.get(f"/v1/points/{point['id']}", headers=bearer("coordinator", katotth=["UA80"]))
    assert read.status_code == 200 and read.json() == point
    public = registry_client.get(f"/v1/points/{point['id']}").json()
    assert public["view"] == "public" and public["exact_location"] is True
    assert {k: v for k, v in public.items() if k not in ("view", "exact_location")} == {
        k: v for k, v in point.items() if k in public and k != "view"
    }


def test_registering_needs_a_valid_token(registry_client: TestClient) -> None:
    missing = assert_problem(registry_client.post("/v1/points", json=POINT), 401)
    assert "bearer token is required" in missing["detail"]
    garbage = registry_client.post("/v1/points", json=POINT, headers={"Authorization": "Bearer not-a-token"})
    assert_problem(garbage, 401)
    assert garbage.headers["www-authenticate"].startswith("Bearer")


@pytest.mark.parametrize(
    ("roles", "katotth"),
    [(["coordinator"], ["UA32"]), (["coordinator"], ["UA4606"]), (["operator"], None), (["integrator"], None)],
    ids=["other-oblast", "other-raion", "operator", "integrator"],
)
def test_registering_outside_ones_area_is_forbidden(
    registry_client: TestClient, bearer: Bearer, database_urls: dict[str, str], roles: list[str], katotth: Any
) -> None:
    before = count_points(database_urls)
    response = registry_client.post("/v1/points", json=POINT, headers=bearer(*roles, katotth=katotth))
    assert_problem(response, 403)
    assert count_points(database_urls) == before


@pytest.mark.parametrize(
    ("field", "value", "location"),
    [
        ("name_uk", "Пункт\x00незламності", "body.name_uk"),
        ("address_uk", "вул. Хрещатик, 1\x00", "body.address_uk"),
        ("settlement", "Ки\x00їв", "body.settlement"),
        ("operator_org", "ДСНС\x00", "body.operator_org"),
        ("name_uk", "Пункт\x1bнезламності", "body.name_uk"),
        ("name_uk", "Пункт\nнезламності", "body.name_uk"),  # a name is one line
        ("name_uk", "Пункт \ud800 незламності", "body.name_uk"),  # a lone surrogate, as JSON's "\ud800"
        ("schedule", {"kind": "always", "note": "цілодобово\x00"}, "body.schedule.note"),
    ],
    ids=[
        "nul-name",
        "nul-address",
        "nul-settlement",
        "nul-org",
        "escape-name",
        "newline-name",
        "surrogate",
        "nul-note",
    ],
)
def test_control_characters_are_refused_naming_the_field(
    registry_client: TestClient,
    bearer: Bearer,
    database_urls: dict[str, str],
    field: str,
    value: object,
    location: str,
) -> None:
    before = count_points(database_urls)
    # json.dumps escapes as JSON does ("\u0000", "\ud800"), which httpx's json= cannot do for a lone surrogate.
    content = json.dumps({**POINT, field: value})
    headers = {**bearer("admin"), "content-type": "application/json"}
    response = registry_client.post("/v1/points", content=content, headers=headers)
    body = assert_problem(response, 422, field=location)
    assert body["title"] == "Unprocessable Content"
    assert count_points(database_urls) == before


def test_free_text_keeps_tabs_and_line_breaks(registry_client: TestClient, bearer: Bearer) -> None:
    note = "Пн–Пт:\t8–20\nСб:\t10–16"
    point = register_point(registry_client, bearer, schedule={"kind": "always", "note": note})
    assert point["schedule"]["note"] == note


@pytest.mark.parametrize(
    ("changes", "location"),
    [
        ({"lat": "50.1"}, "body.lat"),
        ({"lon": True}, "body.lon"),
        ({"capacity": True}, "body.capacity"),
        ({"capacity": "120"}, "body.capacity"),
        ({"capacity": 2**63}, "body.capacity"),
        ({"capacity": 0}, "body.capacity"),
        ({"category": 1}, "body.category"),
        ({"services": "heat"}, "body.services"),
        ({"services": ["heat", "sauna"]}, "body.services.1"),
        ({"katotth": "UA80"}, "body.katotth"),
        ({"lat": 91}, "body.lat"),
        ({"name_uk": 42}, "body.name_uk"),
        ({"wifi_password": "x"}, "body.wifi_password"),
    ],
    ids=[
        "lat-string",
        "lon-bool",
        "capacity-bool",
        "capacity-string",
        "capacity-2**63",
        "capacity-zero",
        "category-number",
        "services-string",
        "unknown-service",
        "katotth-prefix",
        "lat-out-of-range",
        "name-number",
        "unknown-field",
    ],
)
def test_json_types_are_strict(
    registry_client: TestClient,
    bearer: Bearer,
    database_urls: dict[str, str],
    changes: dict[str, Any],
    location: str,
) -> None:
    before = count_points(database_urls)
    response = registry_client.post("/v1/points", json={**POINT, **changes}, headers=bearer("admin"))
    assert_problem(response, 422, field=location)
    assert count_points(database_urls) == before


def test_whole_numbers_are_numbers(registry_client: TestClient, bearer: Bearer) -> None:
    point = register_point(registry_client, bearer, lat=50, lon=31, katotth="UA32140000000000000")
    assert (point["lat"], point["lon"]) == (50.0, 31.0)


def test_missing_fields_are_named(registry_client: TestClient, bearer: Bearer) -> None:
    body = {k: v for k, v in POINT.items() if k not in ("name_uk", "capacity")}
    response = registry_client.post("/v1/points", json=body, headers=bearer("admin"))
    problem = assert_problem(response, 422, field="body.name_uk")
    assert {"location": "body.capacity", "message": "Field required", "type": "missing"} in problem["errors"]


def test_a_body_that_is_not_json_is_refused(
    registry_client: TestClient, bearer: Bearer, database_urls: dict[str, str]
) -> None:
    before = count_points(database_urls)
    headers = bearer("admin")
    text = registry_client.post("/v1/points", content="name_uk=x", headers={**headers, "content-type": "text/plain"})
    assert "application/json" in assert_problem(text, 415)["detail"]
    untyped = registry_client.post("/v1/points", content=b'{"name_uk": "x"}', headers=headers)
    assert_problem(untyped, 415)
    broken = registry_client.post(
        "/v1/points", content=b'{"name_uk": ', headers={**headers, "content-type": "application/json"}
    )
    problem = assert_problem(broken, 422, field="body")
    assert problem["errors"][0]["type"] == "json_invalid"
    empty = registry_client.post("/v1/points", headers={**headers, "content-type": "application/json"})
    assert_problem(empty, 422, field="body")
    cp1251 = registry_client.post(
        "/v1/points",
        content='{"name_uk": "Київ"}'.encode("cp1251"),
        headers={**headers, "content-type": "application/json"},
    )
    assert_problem(cp1251, 400)
    assert count_points(database_urls) == before


def test_an_oversized_body_is_refused(
    registry_client: TestClient, bearer: Bearer, database_urls: dict[str, str]
) -> None:
    before = count_points(database_urls)
    big = {**POINT, "name_en": "x" * MAX_BODY_BYTES}
    declared = registry_client.post("/v1/points", json=big, headers=bearer("admin"))
    assert assert_problem(declared, 413)["title"] == "Content Too Large"

    def chunks() -> Iterator[bytes]:
        yield b'{"name_en": "'
        for _ in range(MAX_BODY_BYTES // 1024 + 1):
            yield b"x" * 1024
        yield b'"}'

    # Streamed without a Content-Length: the limit counts what arrives.
    streamed = registry_client.post(
        "/v1/points", content=chunks(), headers={**bearer("admin"), "content-type": "application/json"}
    )
    assert "content-length" not in streamed.request.headers
    assert_problem(streamed, 413)
    assert count_points(database_urls) == before


def test_reading_an_unknown_point_is_404(registry_client: TestClient) -> None:
    point_id = random_point_id()
    assert point_id in assert_problem(registry_client.get(f"/v1/points/{point_id}"), 404)["detail"]


def test_reading_a_malformed_id_is_422(registry_client: TestClient) -> None:
    assert_problem(registry_client.get("/v1/points/not-a-uuid"), 422, field="path.point_id")


def test_a_bad_token_on_a_public_read_is_401(registry_client: TestClient, bearer: Bearer) -> None:
    point = register_point(registry_client, bearer)
    response = registry_client.get(f"/v1/points/{point['id']}", headers={"Authorization": "Bearer forged"})
    assert_problem(response, 401)


def test_coarse_point_shows_the_settlement_not_the_address(registry_client: TestClient, bearer: Bearer) -> None:
    point = register_point(
        registry_client, bearer, visibility="coarse", lat=50.45678, lon=30.52345, address_en="1 Khreshchatyk St"
    )
    public = registry_client.get(f"/v1/points/{point['id']}").json()
    assert public["address_uk"] == POINT["settlement"] and public["address_en"] is None
    assert (public["lat"], public["lon"]) == (50.46, 30.52)
    assert POINT["address_uk"] not in str(public)
    coordinator = registry_client.get(f"/v1/points/{point['id']}", headers=bearer("coordinator", katotth=["UA80"]))
    assert coordinator.json()["address_uk"] == POINT["address_uk"] and coordinator.json()["lat"] == 50.45678


def test_hidden_point_is_404_except_to_those_who_manage_it(registry_client: TestClient, bearer: Bearer) -> None:
    point = register_point(registry_client, bearer, visibility="hidden")
    path = f"/v1/points/{point['id']}"
    assert_problem(registry_client.get(path), 404)
    assert_problem(registry_client.get(path, headers=bearer("coordinator", katotth=["UA32"])), 404)
    assert registry_client.get(path, headers=bearer("coordinator", katotth=["UA80"])).status_code == 200
    operator = bearer("operator", points=[point["id"].upper()])
    assert registry_client.get(path, headers=operator).json()["address_uk"] == POINT["address_uk"]
