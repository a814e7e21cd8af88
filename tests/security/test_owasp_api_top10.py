"""One test (or a few) per OWASP API Security Top 10 (2023) item that applies, against the apps as they serve.

Notify's items (its SMS, contacts and webhooks, API6 and API7 included) are in test_owasp_notify.py. API10 here
covers events from the broker; Kannel's and webhook receivers' answers are notify's.
"""

import re
import secrets
import time
import uuid
from typing import Any

import jwt
import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

from poi_search.app import create_app as create_search
from poi_search.settings import SearchSettings
from poi_shared.auth import issue_token
from poi_shared.envelope import PoisonMessage, parse_message
from poi_shared.models import MAX_BODY_BYTES
from tests.integration.routes.conftest import POINT, SECRET, Bearer, eventually, known_to_status, serve
from tests.support.events import status_event

pytestmark = pytest.mark.integration
OTHER_SECRET = "another-secret-not-for-production-0123456789"
HEALTH = {"/livez", "/readyz", "/metrics"}


def register(registry_client: TestClient, bearer: Bearer, **changes: Any) -> dict[str, Any]:
    response = registry_client.post("/v1/points", json={**POINT, **changes}, headers=bearer("admin"))
    assert response.status_code == 201, response.text
    return response.json()


def apps(*clients: TestClient) -> dict[str, TestClient]:
    return {client.app.title: client for client in clients}  # type: ignore[attr-defined]


# API1:2023 Broken Object Level Authorization


def test_api1_an_operator_cannot_touch_another_point(
    registry_client: TestClient, status_client: TestClient, bearer: Bearer
) -> None:
    mine, theirs = register(registry_client, bearer), register(registry_client, bearer)
    known_to_status(status_client, theirs["id"])
    operator = bearer("operator", points=[mine["id"]])
    report = status_client.post(f"/v1/points/{theirs['id']}/status", json={"state": "open"}, headers=operator)
    assert report.status_code == 403, report.text
    patch = registry_client.patch(
        f"/v1/points/{theirs['id']}", json={"public_phone": "+380441234567"}, headers={**operator, "If-Match": "*"}
    )
    assert patch.status_code == 403, patch.text
    history = registry_client.get(f"/v1/points/{theirs['id']}/history", headers=operator)
    assert history.status_code == 403
    assert registry_client.get(f"/v1/points/{theirs['id']}").json()["version"] == theirs["version"]


def test_api1_a_coordinator_cannot_touch_a_point_outside_their_area(
    registry_client: TestClient, status_client: TestClient, bearer: Bearer
) -> None:
    kyiv = register(registry_client, bearer)
    known_to_status(status_client, kyiv["id"])
    lviv = bearer("coordinator", katotth=["UA46"])
    assert (
        status_client.post(f"/v1/points/{kyiv['id']}/status", json={"state": "open"}, headers=lviv).status_code == 403
    )
    patch = registry_client.patch(f"/v1/points/{kyiv['id']}", json={"capacity": 1}, headers={**lviv, "If-Match": "*"})
    assert patch.status_code == 403
    assert registry_client.post(f"/v1/points/{kyiv['id']}/retire", headers=lviv).status_code == 403
    assert registry_client.post("/v1/points", json=POINT, headers=lviv).status_code == 403
    activate = status_client.post("/v1/status/areas/activate", json={"katotth": ["UA80"]}, headers=lviv)
    assert activate.status_code == 403


# API2:2023 Broken Authentication


def untrustworthy_tokens() -> dict[str, str]:
    now = int(time.time())
    good = {"sub": "x", "roles": ["admin"], "iss": "poi-dev", "aud": "poi", "iat": now, "exp": now + 600}
    header, payload, _ = issue_token(SECRET, subject="x", roles=["admin"]).split(".")
    return {
        "expired": issue_token(SECRET, subject="x", roles=["admin"], ttl_s=-3600),
        "wrong audience": issue_token(SECRET, subject="x", roles=["admin"], audience="someone-else"),
        "wrong issuer": issue_token(SECRET, subject="x", roles=["admin"], issuer="evil"),
        "alg none": jwt.encode(good, key=None, algorithm="none"),
        "bad signature": issue_token(OTHER_SECRET, subject="x", roles=["admin"]),
        "tampered payload": f"{header}.{payload}x.{secrets.token_urlsafe(32)}",
        "garbage": "not-a-token",
    }


@pytest.mark.parametrize("kind", list(untrustworthy_tokens()))
def test_api2_untrustworthy_tokens_are_refused_by_every_write(
    kind: str, registry_client: TestClient, status_client: TestClient, search_client: TestClient
) -> None:
    token = {"Authorization": f"Bearer {untrustworthy_tokens()[kind]}"}
    point = f"/v1/points/{uuid.uuid4()}"
    for client, method, path, body in [
        (registry_client, "POST", "/v1/points", POINT),
        (status_client, "POST", f"{point}/status", {"state": "open"}),
        (search_client, "POST", "/v1/keys", {"name": "Diia"}),
    ]:
        response = client.request(method, path, json=body, headers=token)
        assert response.status_code == 401, f"{kind}: {method} {path} answered {response.status_code}"
        assert response.headers["www-authenticate"].startswith("Bearer")


# API3:2023 Broken Object Property Level Authorization


def test_api3_server_owned_fields_cannot_be_mass_assigned(registry_client: TestClient, bearer: Bearer) -> None:
    for field, value in [("id", str(uuid.uuid4())), ("version", 99), ("retired", True), ("code", "80-999999")]:
        response = registry_client.post("/v1/points", json={**POINT, field: value}, headers=bearer("admin"))
        assert response.status_code == 422, f"{field}: {response.status_code}"
    point = register(registry_client, bearer)
    operator = {**bearer("operator", points=[point["id"]]), "If-Match": "*"}
    for field, value in [("capacity", 9999), ("visibility", "hidden"), ("version", 7), ("lat", 50.0)]:
        response = registry_client.patch(f"/v1/points/{point['id']}", json={field: value}, headers=operator)
        assert response.status_code in (403, 422), f"{field}: {response.status_code}"
    assert registry_client.get(f"/v1/points/{point['id']}").json()["version"] == point["version"]


def test_api3_private_fields_never_reach_a_public_read(
    registry_client: TestClient, search_client: TestClient, bearer: Bearer
) -> None:
    private_phone = "+380441112233"
    point = register(registry_client, bearer, contact_phone=private_phone, name_uk="Пункт із приватним телефоном")
    public = registry_client.get(f"/v1/points/{point['id']}")
    assert public.status_code == 200 and "contact_phone" not in public.json()
    for path in [
        "/v1/points?katotth=UA80&limit=500",
        "/v1/points/export?format=csv",
        "/v1/points/export?format=geojson",
    ]:
        response = registry_client.get(path)
        assert response.status_code == 200 and private_phone not in response.text, path
    eventually(
        lambda: point["id"] in search_client.get("/v1/search/text", params={"q": "приватним"}).text,
        "search has the point",
    )
    for path in ["/v1/search/text?q=приватним", "/v1/opendata/points.csv", "/v1/opendata/points.geojson"]:
        response = search_client.get(path)
        assert response.status_code == 200 and private_phone not in response.text, path


# API4:2023 Unrestricted Resource Consumption


def test_api4_bodies_pages_and_radii_are_capped(
    registry_client: TestClient, status_client: TestClient, search_client: TestClient, bearer: Bearer
) -> None:
    huge = {**POINT, "name_en": "x" * (MAX_BODY_BYTES + 1)}
    assert registry_client.post("/v1/points", json=huge, headers=bearer("admin")).status_code == 413
    report = {"state": "open", "note": "x" * 5000}
    assert (
        status_client.post(f"/v1/points/{uuid.uuid4()}/status", json=report, headers=bearer("admin")).status_code == 413
    )
    assert registry_client.get("/v1/points", params={"limit": 501}).status_code == 422
    assert (
        search_client.get("/v1/search/nearest", params={"lat": 50.45, "lon": 30.52, "limit": 1001}).status_code == 422
    )
    radius = search_client.get("/v1/search/nearest", params={"lat": 50.45, "lon": 30.52, "radius_km": 100000})
    assert radius.status_code == 422
    assert search_client.get("/v1/search/text", params={"q": "x" * 5000}).status_code in (414, 422)


def test_api4_public_search_is_rate_limited(infra: Any, routes_namespace: str) -> None:
    settings = SearchSettings(nats_url=infra.nats_url, namespace=routes_namespace, rate_limit_ip=3)
    running = serve(create_search(settings))
    client = next(running)
    try:
        eventually(lambda: client.get("/readyz").status_code == 200, "search catches up")
        answers = [client.get("/v1/search/nearest", params={"lat": 50.45, "lon": 30.52}) for _ in range(6)]
    finally:
        running.close()
    limited = [a for a in answers if a.status_code == 429]
    assert limited, [a.status_code for a in answers]
    assert int(limited[0].headers["retry-after"]) > 0


# API5:2023 Broken Function Level Authorization

SAMPLES = {"point_id": str(uuid.uuid4()), "oblast": "UA14", "key_id": "0123456789ab", "kind": "stale"}
BODIES: dict[tuple[str, str], Any] = {
    ("POST", "/v1/points"): POINT,
    ("PATCH", "/v1/points/{point_id}"): {"capacity": 100},
    ("POST", "/v1/points/{point_id}/retire"): None,
    ("POST", "/v1/points/{point_id}/restore"): None,
    ("POST", "/v1/points/import"): "csv",
    ("PUT", "/v1/oblast-policies/{oblast}"): {"visibility": "coarse"},
    ("POST", "/v1/points/{point_id}/status"): {"state": "open"},
    ("POST", "/v1/status/areas/activate"): {"katotth": ["UA80"]},
    ("POST", "/v1/status/areas/deactivate"): {"katotth": ["UA80"]},
    ("POST", "/v1/keys"): {"name": "Diia"},
    ("DELETE", "/v1/keys/{key_id}"): None,
}
CSV = "code,name_uk,category,lat,lon,katotth,address_uk,settlement,capacity\n"


def operations(client: TestClient) -> list[tuple[str, str, bool]]:
    """Every operation of the app's OpenAPI document: method, path, whether it declares a bearer token."""
    document = client.app.openapi()  # type: ignore[attr-defined]
    return [
        (method.upper(), path, bool(operation.get("security")))
        for path, item in document["paths"].items()
        for method, operation in item.items()
    ]


def send(client: TestClient, method: str, path: str, headers: dict[str, str]) -> int:
    url = re.sub(r"\{(\w+)\}", lambda m: SAMPLES[m.group(1)], path)
    body = BODIES.get((method, path))
    if body == "csv":
        return client.request(method, url, content=CSV, headers={**headers, "content-type": "text/csv"}).status_code
    return client.request(method, url, json=body, headers={**headers, "If-Match": "*"}).status_code


def test_api5_every_write_needs_a_token_and_a_role_that_may_make_it(
    registry_client: TestClient, status_client: TestClient, search_client: TestClient, bearer: Bearer
) -> None:
    unprivileged = {
        "integrator": bearer("integrator"),
        "operator of another point": bearer("operator", points=[str(uuid.uuid4())]),
        "coordinator elsewhere": bearer("coordinator", katotth=["UA46"]),
    }
    checked = 0
    for client in (registry_client, status_client, search_client):
        for method, path, secured in operations(client):
            if method == "GET":
                continue
            assert secured, f"{method} {path} is a write that declares no bearer token"
            assert (method, path) in BODIES, f"{method} {path} is new: add it to this role matrix"
            assert send(client, method, path, {}) == 401, f"{method} {path} without a token"
            for who, headers in unprivileged.items():
                if who == "coordinator elsewhere" and path == "/v1/points/import":
                    continue  # an empty file holds no row outside their area: refused per row, covered in registry
                status = send(client, method, path, headers)
                assert status in (403, 404), f"{method} {path} by {who}: {status}"
            checked += 1
    assert checked == len(BODIES)


# API8:2023 Security Misconfiguration


def test_api8_answers_carry_security_headers_and_no_internals(
    registry_client: TestClient, status_client: TestClient, search_client: TestClient, notify_client: TestClient
) -> None:
    for title, client in apps(registry_client, status_client, search_client, notify_client).items():
        for response in [
            client.get("/readyz"),
            client.get("/v1/no-such-route"),
            client.post("/v1/points", content=b"{not json", headers={"content-type": "application/json"}),
        ]:
            assert response.headers["x-content-type-options"] == "nosniff", title
            assert response.headers["x-frame-options"] == "DENY", title
            assert "default-src 'none'" in response.headers["content-security-policy"], title
            assert "Traceback" not in response.text and 'File "' not in response.text, title


def test_api8_cors_lets_browsers_read_public_search_and_nothing_else(
    registry_client: TestClient, search_client: TestClient
) -> None:
    origin = {"Origin": "https://maps.example"}
    read = search_client.get("/v1/search/nearest", params={"lat": 50.45, "lon": 30.52}, headers=origin)
    assert read.headers.get("access-control-allow-origin") in ("*", origin["Origin"])
    preflight = search_client.options("/v1/keys", headers={**origin, "Access-Control-Request-Method": "POST"})
    assert "POST" not in preflight.headers.get("access-control-allow-methods", "")
    write = registry_client.options("/v1/points", headers={**origin, "Access-Control-Request-Method": "POST"})
    assert "access-control-allow-origin" not in write.headers


# API9:2023 Improper Inventory Management


def test_api9_every_route_is_documented_and_versioned(
    registry_client: TestClient, status_client: TestClient, search_client: TestClient, notify_client: TestClient
) -> None:
    for title, client in apps(registry_client, status_client, search_client, notify_client).items():
        documented = {(m, p) for m, p, _ in operations(client)}
        for route in client.app.routes:  # type: ignore[attr-defined]
            if not isinstance(route, APIRoute) or route.path in HEALTH:
                continue
            assert route.path.startswith("/v1/"), f"{title}: {route.path} is not versioned"
            for method in route.methods - {"HEAD", "OPTIONS"}:
                assert (method, route.path) in documented or (not route.include_in_schema and route.path in HEALTH), (
                    f"{title}: {method} {route.path} is not in its OpenAPI document"
                )
        assert all(p.startswith("/v1/") or p in HEALTH for _, p in documented), title


# API10:2023 Unsafe Consumption of APIs


def test_api10_events_from_the_broker_are_validated_before_use() -> None:
    good = status_event("t")
    assert parse_message(good.headers, good.body).id == good.event_id
    unexpected = good.body.replace(b'"state":"open"', b'"state":"open","admin":true,"state_x":1')
    for headers, body in [
        (good.headers, b"{not json"),
        (good.headers, good.body.replace(b'"state":"open"', b'"state":"exploded"')),
        ({**good.headers, "ce-type": "ua.poi.status.changed.v9"}, good.body),
        ({**good.headers, "ce-specversion": "0.3"}, good.body),
        ({k: v for k, v in good.headers.items() if k != "ce-id"}, good.body),
    ]:
        with pytest.raises(PoisonMessage):
            parse_message(headers, body)
    try:
        event = parse_message(good.headers, unexpected)
    except PoisonMessage:
        return  # refused outright: fine
    assert not hasattr(event.data, "admin")  # or unknown fields dropped, never taken as data
