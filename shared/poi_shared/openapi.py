"""OpenAPI documents integrators can generate clients from: problem+json errors, bearer security, servers, licence.

Routes declare only the errors of their own domain, with `responses=problems(404, 409)`; everything a route gives
because of how it is built (422 for input, 400/413/415 for a body, 401/403 for a token, 503 for a dependency) is
added here from the route itself, so the next route is documented by the same rules.
"""

from collections.abc import Callable, Iterator, Sequence
from typing import Any

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute, iter_route_contexts
from starlette.routing import BaseRoute

from poi_shared.auth import current_principal, optional_principal
from poi_shared.errors import PROBLEM_JSON, Problem, reason

BEARER_SCHEME = "bearer"
SCHEMA_REF_TEMPLATE = "#/components/schemas/{model}"
CONTACT = {"name": "Points of Invincibility backend maintainers"}
# EUPL-1.2: the European Commission's copyleft licence for public-sector software, compatible with GPL, MPL and
# others, with official translations; fits a state service that other public bodies may reuse and adapt.
LICENSE = {"name": "European Union Public Licence 1.2", "identifier": "EUPL-1.2"}
SERVERS = [{"url": "/", "description": "The host that serves this document."}]

BEARER = {
    "type": "http",
    "scheme": "bearer",
    "bearerFormat": "JWT",
    "description": "A JWT from the identity provider: `roles` among admin, coordinator (scope `katotth`: KATOTTH "
    "prefixes, oblast level or below), operator (scope `points`: point ids) and integrator.",
}
RETRY_AFTER = {"description": "Seconds to wait before trying again.", "schema": {"type": "integer", "minimum": 0}}
WWW_AUTHENTICATE = {"description": "The bearer challenge.", "schema": {"type": "string"}}
DESCRIPTIONS = {
    400: "The body could not be read (e.g. not UTF-8).",
    401: "No bearer token, or one that cannot be trusted.",
    403: "The token's roles or scope do not allow this.",
    413: "The body is larger than this endpoint accepts.",
    415: "The body is not application/json.",
    422: "A parameter or the body is invalid; `errors` names each part.",
    503: "A dependency does not answer; retry after `Retry-After` seconds.",
}


def problems(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The errors a route gives from its own logic (e.g. 404, 409), for the route decorator's `responses`."""
    return {status: {"description": reason(status)} for status in statuses}


def install_openapi(app: FastAPI) -> None:
    """Serve the app's OpenAPI document completed with problem+json errors and security on every operation."""
    generate = app.openapi
    completed: list[dict[str, Any]] = []

    def openapi() -> dict[str, Any]:
        document = generate()  # FastAPI caches it until the routes change
        if not completed or completed[0] is not document:
            complete_document(document, app.routes)
            completed[:] = [document]
        return document

    app.openapi = openapi  # type: ignore[method-assign]


def complete_document(document: dict[str, Any], routes: Sequence[BaseRoute]) -> None:
    """Document every operation's problems and security, and the schemas and scheme they use."""
    components = document.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    problem_schema = Problem.model_json_schema(ref_template=SCHEMA_REF_TEMPLATE)
    schemas.update(problem_schema.pop("$defs", {}))
    schemas["Problem"] = problem_schema
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)  # FastAPI's 422 body, which these apps never send
    components["securitySchemes"] = {BEARER_SCHEME: BEARER}
    for route in iter_route_contexts(routes):  # routes as included, with their routers' prefixes and dependencies
        if not isinstance(route.original_route, APIRoute) or not route.include_in_schema:
            continue
        calls = set(_calls(route.dependant))
        for method in route.methods or ():
            operation = document["paths"][route.path_format][method.lower()]
            _complete_operation(
                operation, token_required=current_principal in calls, token_optional=optional_principal in calls
            )


def _complete_operation(operation: dict[str, Any], *, token_required: bool, token_optional: bool) -> None:
    """Add the problems the operation's shape implies and its security; every error body is problem+json."""
    responses: dict[str, Any] = operation["responses"]
    responses.pop("422", None)
    implied = {503}
    if operation.get("parameters") or "requestBody" in operation:
        implied.add(422)
    if "requestBody" in operation:
        implied |= {400, 413, 415}
    if token_required or token_optional:
        implied.add(401)
    if token_required:
        implied.add(403)
    for code in implied:
        responses.setdefault(str(code), {"description": DESCRIPTIONS.get(code, reason(code))})
    responses["default"] = {"description": "An unexpected error (500), or any error not listed above."}
    for status, response in responses.items():
        if status == "default" or int(status) >= 400:
            response["content"] = {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}}
    responses["503"]["headers"] = {"Retry-After": RETRY_AFTER}
    if "401" in responses:
        responses["401"]["headers"] = {"WWW-Authenticate": WWW_AUTHENTICATE}
    if token_required:
        operation["security"] = [{BEARER_SCHEME: []}]
    elif token_optional:
        operation["security"] = [{}, {BEARER_SCHEME: []}]  # anonymous, or a token that shows more
    else:
        operation["security"] = []
    operation["responses"] = dict(sorted(responses.items()))


def _calls(dependant: Dependant) -> Iterator[Callable[..., Any]]:
    """Every dependency a route runs, at any depth."""
    for dependency in dependant.dependencies:
        if dependency.call is not None:
            yield dependency.call
        yield from _calls(dependency)
