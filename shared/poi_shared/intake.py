"""What a request must be before a route reads it: a JSON body (or a route's declared type), within its limit."""

from collections.abc import Mapping

from fastapi import HTTPException, Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from poi_shared.errors import problem, reason


def declared_media_types(request: Request) -> list[str] | None:
    """The body media types the matched route documents in its openapi_extra; None for a JSON route."""
    extra = getattr(request.scope.get("route"), "openapi_extra", None) or {}
    content = extra.get("requestBody", {}).get("content")
    return list(content) if content else None


WRITE_METHODS = frozenset({"POST", "PUT", "PATCH"})


def unsupported_body(route: object, content_type: str, *, has_body: bool) -> str | None:
    """Why a body of content_type cannot go to the route (the 415's detail), or None if it can.

    A route that reads another body (e.g. text/csv) documents it in openapi_extra's requestBody, and what it
    documents is what it accepts; every other route takes JSON (FastAPI would otherwise validate raw bytes).
    """
    extra = getattr(route, "openapi_extra", None) or {}
    content = extra.get("requestBody", {}).get("content")
    if content:
        accepted = list(content)
        if content_type not in accepted:
            return f"send the body as {' or '.join(accepted)}, not {content_type or 'without a content type'}"
        return None
    is_json = content_type == "application/json" or (
        content_type.startswith("application/") and content_type.endswith("+json")
    )
    if has_body and not is_json:
        return f"send the body as application/json, not {content_type or 'without a content type'}"
    return None


async def require_json_body(request: Request) -> None:
    """415 for a body that is not JSON, or not what the route takes (see unsupported_body): as a dependency.

    Apps from poi_shared.app.build_app need not add it: their BodySizeLimit checks the same, at no cost to
    requests without a body.
    """
    if request.method not in WRITE_METHODS:
        return
    has_body = request.headers.get("content-length", "0") != "0" or "transfer-encoding" in request.headers
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    detail = unsupported_body(request.scope.get("route"), content_type, has_body=has_body)
    if detail is not None:
        raise HTTPException(415, detail)


class BodySizeLimit:
    """413 problem+json for a body over the limit: at once by its Content-Length, or once that much has streamed.

    Starlette's own limit answers a declared oversize in plain text, so this one replaces it. A path in
    `limits` (e.g. a bulk import) has its own limit instead of max_bytes. With json_only, a POST, PUT or PATCH
    body that the matched route does not take (see unsupported_body) gets 415 when the route reads it, before it
    is validated and before the route's dependencies run: what require_json_body does as an app-wide dependency,
    without resolving a dependency for every request.
    """

    def __init__(
        self, app: ASGIApp, max_bytes: int, limits: Mapping[str, int] | None = None, *, json_only: bool = False
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.limits = dict(limits or {})
        self.json_only = json_only

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared, streamed, content_type = None, False, b""
        for name, value in scope["headers"]:
            if name == b"content-length":
                declared = value
            elif name == b"transfer-encoding":
                streamed = True
            elif name == b"content-type":
                content_type = value
        unchecked = self.json_only and scope["method"] in WRITE_METHODS
        if declared is None and not streamed and not unchecked:  # no body (e.g. a GET): nothing to check
            await self.app(scope, receive, send)
            return
        max_bytes = self.limits.get(scope["path"], self.max_bytes)
        if declared is not None and declared.isdigit() and int(declared) > max_bytes:
            await problem(413, reason(413), _detail(max_bytes))(scope, receive, send)
            return
        has_body = streamed or (declared is not None and declared != b"0")
        received = 0

        async def receive_within_limit() -> Message:
            nonlocal received, unchecked
            if unchecked:
                # The route has been matched by the time it reads the body.
                unchecked = False
                media_type = content_type.decode("latin-1").split(";")[0].strip().lower()
                detail = unsupported_body(scope.get("route"), media_type, has_body=has_body)
                if detail is not None:
                    raise HTTPException(415, detail)
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > max_bytes:
                    # Raised inside the route's read of the body, so the app's problem+json handler answers it.
                    raise HTTPException(413, _detail(max_bytes))
            return message

        await self.app(scope, receive_within_limit, send)


def _detail(max_bytes: int) -> str:
    return f"the body may hold at most {max_bytes} bytes"


# Every answer is data for programs, never a page to render: browsers must not sniff it into HTML, frame it, or leak
# the URL it came from. The interactive docs load Swagger UI's scripts, so they get no content security policy.
SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
]
API_CSP = (b"content-security-policy", b"default-src 'none'; frame-ancestors 'none'")
DOCS_PATHS = ("/docs", "/redoc")


class SecurityHeaders:
    """Adds SECURITY_HEADERS to every HTTP answer (and a strict content security policy outside the docs)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        extra = SECURITY_HEADERS if scope["path"].startswith(DOCS_PATHS) else [*SECURITY_HEADERS, API_CSP]

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *extra]
            await send(message)

        await self.app(scope, receive, send_with_headers)
