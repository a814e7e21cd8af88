"""HTTP behaviour of search's public reads: strict query strings, and cacheable, compressed JSON answers.

The hot routes take the raw request and return pre-assembled bytes: FastAPI's per-parameter validation and its
response serialisation cost more than the search itself. Query strings are still validated by a pydantic model
(unknown parameters refused), and the model documents the parameters in OpenAPI. The hottest (nearest) is answered
by QuickRoutes in its common case, before the router; anything else reaches the route.
"""

import copy
import functools
import gzip
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from fastapi import HTTPException, Request, Response
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError
from starlette.types import ASGIApp, Receive, Scope, Send

from poi_search.settings import SearchSettings

M = TypeVar("M", bound=BaseModel)
JSON = "application/json"
JSON_BYTES = JSON.encode()
RETRY_WHILE_LOADING_S = 2
MESSAGES = {"extra_forbidden": "unknown parameter"}


def parse_query(request: Request, model: type[M], *, status: int = 422) -> M:
    """The query string as the model, or a precise 4xx: 414 when too long, else `status` naming each parameter.

    A parameter the model types as a list may repeat; any other given twice is refused.
    """
    settings: SearchSettings = request.app.state.settings
    if len(request.scope["query_string"]) > settings.max_query_bytes:
        raise HTTPException(414, f"the query string may hold at most {settings.max_query_bytes} bytes")
    values: dict[str, Any] = {}
    lists = _list_fields(model)
    for name, value in request.query_params.multi_items():  # FastAPI has parsed them already
        if name in lists:
            values.setdefault(name, []).append(value)
        elif name in values:
            held = values[name]
            values[name] = [*held, value] if isinstance(held, list) else [held, value]
        else:
            values[name] = value
    try:
        return model.model_validate(values)
    except ValidationError as exc:
        errors = [
            {"loc": ("query", *e["loc"]), "msg": MESSAGES.get(e["type"], e["msg"]), "type": e["type"]}
            for e in exc.errors(include_url=False)
        ]
        if status == 422:
            raise RequestValidationError(errors) from None
        summary = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in errors[:5])
        raise HTTPException(status, summary) from None


@functools.cache
def _list_fields(model: type[BaseModel]) -> frozenset[str]:
    """The model's fields that take a list: parameters that may repeat."""
    return frozenset(name for name, prop in model.model_json_schema()["properties"].items() if _is_array(prop))


def _is_array(schema: dict[str, Any]) -> bool:
    return schema.get("type") == "array" or any(_is_array(s) for s in schema.get("anyOf", []))


def data_age(request: Request) -> float:
    """Seconds since this replica last knew it held every event; 503 before it ever caught up."""
    age: float | None = request.app.state.data_age()
    if age is None:
        raise HTTPException(503, "search is still loading points", headers={"Retry-After": str(RETRY_WHILE_LOADING_S)})
    return age


def answer(
    request: Request,
    body: bytes,
    *,
    etag: str,
    max_age_s: int,
    data_age_s: float | None = None,
    media_type: str = JSON,
    headers: dict[str, str] | None = None,
) -> Response:
    """200 with the body, or 304 when the client holds it; ETag and Cache-Control always, gzip when asked for."""
    settings: SearchSettings = request.app.state.settings
    sent = {"ETag": etag, "Cache-Control": f"public, max-age={max_age_s}", "Vary": "Accept-Encoding", **(headers or {})}
    if data_age_s is not None:
        sent["X-Data-Age"] = str(int(data_age_s))
    if _matches(request.headers.get("if-none-match"), etag):
        return Response(status_code=304, headers=sent)
    if len(body) >= settings.gzip_min_bytes and "gzip" in request.headers.get("accept-encoding", ""):
        body = gzip.compress(body, compresslevel=5, mtime=0)
        sent["Content-Encoding"] = "gzip"
    return Response(body, media_type=media_type, headers=sent)


@dataclass(frozen=True, slots=True)
class RawAnswer:
    """An answer as ASGI messages take it: status, raw headers, body."""

    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes


def raw_answer(
    scope: Scope, body: bytes, *, etag: str, max_age_s: int, data_age_s: float, gzip_min_bytes: int
) -> RawAnswer:
    """What answer() sends (same status, headers and body), built straight from the ASGI scope for the hot path."""
    if_none_match = accept_encoding = None
    for name, value in scope["headers"]:
        if name == b"if-none-match":
            if_none_match = value.decode("latin-1")
        elif name == b"accept-encoding":
            accept_encoding = value
    sent = [
        (b"etag", etag.encode()),
        (b"cache-control", b"public, max-age=%d" % max_age_s),
        (b"vary", b"Accept-Encoding"),
        (b"x-data-age", b"%d" % int(data_age_s)),
    ]
    if _matches(if_none_match, etag):
        return RawAnswer(304, sent, b"")
    if accept_encoding is not None and len(body) >= gzip_min_bytes and b"gzip" in accept_encoding:
        body = gzip.compress(body, compresslevel=5, mtime=0)
        sent.append((b"content-encoding", b"gzip"))
    sent += [(b"content-length", b"%d" % len(body)), (b"content-type", JSON_BYTES)]
    return RawAnswer(200, sent, body)


QuickHandler = Callable[[Scope], RawAnswer | None]
"""Answers a request from its scope alone, or None to leave it to the route."""


class QuickRoutes:
    """ASGI middleware answering the hottest GET routes without the router, FastAPI's parameters or a Response.

    At spike load FastAPI's per-request machinery (routing, dependency solving, the exception and exit-stack
    middleware) costs more than the search itself. A quick handler takes the common case only; for anything else
    (an odd or bad query string, a replica still loading) it returns None and the route answers, with its own
    validation and problem+json, so both paths give the same answers. The route stays what OpenAPI documents.
    """

    def __init__(self, app: ASGIApp, handlers: Mapping[str, QuickHandler]) -> None:
        self.app = app
        self.handlers = handlers
        self._routes: dict[str, Any] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        handler = self.handlers.get(scope["path"]) if scope["type"] == "http" and scope["method"] == "GET" else None
        quick = handler(scope) if handler is not None else None
        if quick is None:
            await self.app(scope, receive, send)
            return
        scope["route"] = self._route(scope)  # what the router would have set: metrics count under its template
        await send({"type": "http.response.start", "status": quick.status, "headers": quick.headers})
        await send({"type": "http.response.body", "body": quick.body})

    def _route(self, scope: Scope) -> Any:
        path = scope["path"]
        route = self._routes.get(path)
        if route is None:
            route = next((r for r in scope["app"].routes if getattr(r, "path", None) == path), None)
            self._routes[path] = route
        return route


def _matches(if_none_match: str | None, etag: str) -> bool:
    """RFC 9110 weak comparison against an If-None-Match list."""
    if not if_none_match:
        return False
    if if_none_match.strip() == "*":
        return True
    opaque = etag.removeprefix("W/")
    return any(tag.strip().removeprefix("W/") == opaque for tag in if_none_match.split(","))


def weak_etag(*parts: object) -> str:
    """A weak validator from hashable parts (ints, bytes' checksums): equal on every replica holding the same data."""
    return f'W/"{hash(parts) & 0xFFFFFFFFFFFF:012x}"'


def seconds(value: float) -> float:
    """A duration for a JSON body, to a tenth of a second."""
    return round(value, 1) if math.isfinite(value) else 0.0


def query_parameters(model: type[BaseModel], *extra: dict[str, Any]) -> dict[str, Any]:
    """openapi_extra documenting the model's fields as query parameters (for routes that parse them themselves)."""
    schema = model.model_json_schema()
    defs = schema.get("$defs", {})
    required = set(schema.get("required", []))
    parameters = []
    for name, prop in schema["properties"].items():
        prop = _inline(prop, defs)
        parameter: dict[str, Any] = {"name": name, "in": "query", "required": name in required, "schema": prop}
        if "description" in prop:
            parameter["description"] = prop["description"]
        parameters.append(parameter)
    return {"parameters": [*parameters, *extra]}


def _inline(schema: Any, defs: dict[str, Any]) -> Any:
    """The schema with every local $ref replaced by its definition (parameters cannot point into $defs)."""
    if isinstance(schema, dict):
        ref = schema.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/$defs/"):
            target = copy.deepcopy(defs[ref.removeprefix("#/$defs/")])
            return _inline({**target, **{k: v for k, v in schema.items() if k != "$ref"}}, defs)
        return {k: _inline(v, defs) for k, v in schema.items()}
    if isinstance(schema, list):
        return [_inline(v, defs) for v in schema]
    return schema
