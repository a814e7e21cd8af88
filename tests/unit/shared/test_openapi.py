"""Every service's OpenAPI document is valid 3.1 and documents what each operation really gives.

The route tests check the other direction: every response a route gives in them is documented here.
"""

from collections.abc import Callable, Iterator
from typing import Any

import jsonschema
import pytest
from fastapi import FastAPI

from poi_notify.app import create_app as create_notify
from poi_notify.settings import NotifySettings
from poi_registry.app import create_app as create_registry
from poi_registry.settings import RegistrySettings
from poi_search.app import create_app as create_search
from poi_search.settings import SearchSettings
from poi_shared.models import INT64_MAX
from poi_shared.openapi import BEARER_SCHEME
from poi_status.app import create_app as create_status
from poi_status.settings import StatusSettings

FACTORIES: dict[str, Callable[[], FastAPI]] = {
    "registry": lambda: create_registry(RegistrySettings()),
    "status": lambda: create_status(StatusSettings()),
    "search": lambda: create_search(SearchSettings()),
    "notify": lambda: create_notify(NotifySettings()),
}
REQUIRED, OPTIONAL, PUBLIC = [{BEARER_SCHEME: []}], [{}, {BEARER_SCHEME: []}], []
INTEGRATOR = [{}, {BEARER_SCHEME: []}, {"apiKey": []}]  # public; an API key or token raises the rate limit
SEARCH_READS = [
    "/v1/search/nearest",
    "/v1/search/bbox",
    "/v1/search/text",
    "/v1/opendata/points.geojson",
    "/v1/opendata/points.csv",
    "/v1/ogc/",
    "/v1/ogc/conformance",
    "/v1/ogc/collections",
    "/v1/ogc/collections/points",
    "/v1/ogc/collections/points/items",
    "/v1/ogc/collections/points/items/{feature_id}",
    "/v1/changes",
]
# Who may call what, written down once by hand: a new operation fails here until its security is decided.
EXPECTED_SECURITY = {
    ("registry", "POST /v1/points"): REQUIRED,
    ("registry", "GET /v1/points/{point_id}"): OPTIONAL,  # public; a token shows managers the exact place
    ("registry", "GET /v1/points"): OPTIONAL,  # public; a token shows managers their points' private view
    ("registry", "PATCH /v1/points/{point_id}"): REQUIRED,
    ("registry", "POST /v1/points/{point_id}/retire"): REQUIRED,
    ("registry", "POST /v1/points/{point_id}/restore"): REQUIRED,
    ("registry", "GET /v1/points/{point_id}/history"): REQUIRED,
    ("registry", "POST /v1/points/import"): REQUIRED,
    ("registry", "GET /v1/points/export"): OPTIONAL,  # public points only; integrators send their token
    ("registry", "GET /v1/oblast-policies"): REQUIRED,
    ("registry", "PUT /v1/oblast-policies/{oblast}"): REQUIRED,
    ("status", "POST /v1/points/{point_id}/status"): REQUIRED,
    ("status", "GET /v1/points/{point_id}/status"): PUBLIC,
    ("status", "GET /v1/status/points"): PUBLIC,
    ("status", "GET /v1/status/feed"): PUBLIC,
    ("status", "POST /v1/status/areas/activate"): REQUIRED,
    ("status", "POST /v1/status/areas/deactivate"): REQUIRED,
    ("status", "GET /v1/status/lists/{kind}"): REQUIRED,
    ("status", "GET /v1/status/stats/states"): REQUIRED,
    ("status", "GET /v1/status/stats/visitors"): REQUIRED,
    **{("search", f"GET {path}"): INTEGRATOR for path in SEARCH_READS},
    ("search", "POST /v1/keys"): REQUIRED,
    ("search", "GET /v1/keys"): REQUIRED,
    ("search", "DELETE /v1/keys/{key_id}"): REQUIRED,
    ("notify", "GET /v1/observations"): REQUIRED,
    # Residents subscribe with no account; abuse limits per number, address and in total stand in for a token.
    ("notify", "POST /v1/subscriptions"): PUBLIC,
    ("notify", "POST /v1/subscriptions/confirm"): PUBLIC,
    ("notify", "POST /v1/subscriptions/unsubscribe"): PUBLIC,
    ("notify", "GET /v1/subscriptions/{subscription_id}"): PUBLIC,
    # Kannel's callbacks: the shared gateway token in the query (or loopback only), not a bearer token.
    ("notify", "GET /v1/sms/inbound"): PUBLIC,
    ("notify", "GET /v1/sms/dlr"): PUBLIC,
    ("notify", "POST /v1/contacts"): REQUIRED,
    ("notify", "GET /v1/contacts"): REQUIRED,
    ("notify", "DELETE /v1/contacts/{contact_id}"): REQUIRED,
    ("notify", "POST /v1/webhooks"): REQUIRED,
    ("notify", "GET /v1/webhooks"): REQUIRED,
    ("notify", "GET /v1/webhooks/{webhook_id}"): REQUIRED,
    ("notify", "PATCH /v1/webhooks/{webhook_id}"): REQUIRED,
    ("notify", "DELETE /v1/webhooks/{webhook_id}"): REQUIRED,
    ("notify", "GET /v1/webhooks/{webhook_id}/deliveries"): REQUIRED,
    ("notify", "POST /v1/webhooks/{webhook_id}/deliveries/replay-dead-letters"): REQUIRED,
    ("notify", "POST /v1/webhooks/{webhook_id}/deliveries/{delivery_id}/replay"): REQUIRED,
    **{(service, "GET /readyz"): PUBLIC for service in FACTORIES},
}
PROBLEM_CONTENT = {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}


@pytest.fixture(scope="module", params=list(FACTORIES))
def service_document(request: pytest.FixtureRequest) -> tuple[str, dict[str, Any]]:
    """A service's name and its OpenAPI document, as /openapi.json serves it."""
    return request.param, FACTORIES[request.param]().openapi()


def operations(document: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every operation as "METHOD /path" and its object."""
    for path, item in document["paths"].items():
        for method, operation in item.items():
            yield f"{method.upper()} {path}", operation


def test_document_is_valid_openapi_3_1(service_document: tuple[str, dict[str, Any]]) -> None:
    from schemathesis.specs.openapi.definitions import OPENAPI_31

    _, document = service_document
    jsonschema.Draft202012Validator(OPENAPI_31).validate(document)
    for schema in document["components"]["schemas"].values():
        jsonschema.Draft202012Validator.check_schema(schema)
    for ref in set(refs(document)):
        resolve(document, ref)
    ids = [operation["operationId"] for _, operation in operations(document)]
    assert len(ids) == len(set(ids)), f"duplicate operationIds: {ids}"


def test_info_names_contact_licence_and_servers(service_document: tuple[str, dict[str, Any]]) -> None:
    _, document = service_document
    assert document["info"]["contact"]["name"]
    assert document["info"]["license"] == {"name": "European Union Public Licence 1.2", "identifier": "EUPL-1.2"}
    assert document["servers"] and all(server["url"] for server in document["servers"])
    scheme = document["components"]["securitySchemes"][BEARER_SCHEME]
    assert (scheme["type"], scheme["scheme"], scheme["bearerFormat"]) == ("http", "bearer", "JWT")


def test_every_operation_declares_the_security_decided_for_it(service_document: tuple[str, dict[str, Any]]) -> None:
    service, document = service_document
    declared = {(service, name): operation.get("security") for name, operation in operations(document)}
    expected = {key: value for key, value in EXPECTED_SECURITY.items() if key[0] == service}
    assert declared == expected


def test_every_operation_documents_its_problems(service_document: tuple[str, dict[str, Any]]) -> None:
    _, document = service_document
    for name, operation in operations(document):
        responses = operation["responses"]
        statuses = {int(s) for s in responses if s != "default"}
        takes_input = bool(operation.get("parameters")) or "requestBody" in operation
        assert 503 in statuses and "Retry-After" in responses["503"]["headers"], name
        assert (422 in statuses) == takes_input, name
        if "requestBody" in operation:
            assert {400, 413, 415} <= statuses, name
        if operation["security"] == REQUIRED:
            assert {401, 403} <= statuses and "WWW-Authenticate" in responses["401"]["headers"], name
        if operation["security"] in (OPTIONAL, INTEGRATOR):
            assert 401 in statuses, name
        if operation["security"] == INTEGRATOR:
            assert {304, 414, 429} <= statuses and "Retry-After" in responses["429"]["headers"], name
        if operation["security"] == PUBLIC:
            assert not {401, 403} & statuses, name
        for status, response in responses.items():
            if status == "default" or int(status) >= 400:
                assert response["content"] == PROBLEM_CONTENT, f"{name} {status}"
                assert response["description"], f"{name} {status}"


def test_domain_errors_are_documented_where_routes_give_them() -> None:
    documents = {service: factory().openapi() for service, factory in FACTORIES.items()}
    assert "404" in documents["registry"]["paths"]["/v1/points/{point_id}"]["get"]["responses"]
    status_path = documents["status"]["paths"]["/v1/points/{point_id}/status"]
    assert {"404", "409"} <= set(status_path["post"]["responses"]) and "404" in status_path["get"]["responses"]


def test_fastapis_validation_error_schema_is_gone(service_document: tuple[str, dict[str, Any]]) -> None:
    _, document = service_document
    assert "HTTPValidationError" not in str(document) and "ValidationError" not in document["components"]["schemas"]
    problem = document["components"]["schemas"]["Problem"]
    assert {"type", "title", "status", "detail", "instance", "errors"} <= set(problem["properties"])


def test_every_integer_input_fits_64_bits(service_document: tuple[str, dict[str, Any]]) -> None:
    _, document = service_document
    for where, schema in input_schemas(document):
        if schema.get("type") == "integer":
            assert -(2**63) <= schema.get("minimum", -(2**64)) and schema.get("maximum", 2**64) <= INT64_MAX, where


def test_every_string_input_is_constrained(service_document: tuple[str, dict[str, Any]]) -> None:
    """Free strings must be Line or Text (their pattern), or an enum, a format or a pattern of their own."""
    _, document = service_document
    for where, schema in input_schemas(document):
        if schema.get("type") == "string":
            assert {"enum", "const", "format", "pattern"} & set(schema), f"{where} takes any string"


def input_schemas(document: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every schema a client sends: parameters and request bodies, through $refs, properties, items and unions."""
    for name, operation in operations(document):
        for parameter in operation.get("parameters", []):
            yield from walk(document, parameter["schema"], f"{name} {parameter['in']}.{parameter['name']}", set())
        for media in operation.get("requestBody", {}).get("content", {}).values():
            yield from walk(document, media["schema"], f"{name} body", set())


def walk(document: dict[str, Any], schema: dict[str, Any], where: str, seen: set[str]) -> Iterator[tuple[str, dict]]:
    if "$ref" in schema:
        if schema["$ref"] in seen:
            return
        target = resolve(document, schema["$ref"])
        yield from walk(document, target, where, seen | {schema["$ref"]})
        return
    yield where, schema
    for key, sub in schema.get("properties", {}).items():
        yield from walk(document, sub, f"{where}.{key}", seen)
    for key in ("items", "additionalProperties"):
        if isinstance(schema.get(key), dict):
            yield from walk(document, schema[key], f"{where}[]", seen)
    for key in ("anyOf", "oneOf", "allOf"):
        for sub in schema.get(key, []):
            yield from walk(document, sub, where, seen)


def refs(node: object) -> Iterator[str]:
    """Every $ref anywhere in a document."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                yield value
            else:
                yield from refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from refs(item)


def resolve(document: dict[str, Any], ref: str) -> dict[str, Any]:
    """Follow a local JSON pointer; KeyError when it does not resolve."""
    assert ref.startswith("#/"), ref
    node: Any = document
    for part in ref[2:].split("/"):
        node = node[part]
    return node
