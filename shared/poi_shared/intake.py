"""What a request must be before a route reads it: a JSON body (or a route's declared type), within its limit."""

from collections.abc import Mapping

from fastapi import HTTPException, Request
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from poi_shared.errors import problem, reason


def declared_media_types(request: Request) -> list[str] | None:
    """The body media types the matched route documents in its openapi_extra; None for a JSON route."""
    extra = getattr(request.scope.get("route"), "openapi_extra", None) or {}
    content = extra.get("requestBody", {}).get("content")
    return list(content) if content else None


async def require_json_body(request: Request) -> None:
    """415 for a body that is not JSON (FastAPI would otherwise validate its raw bytes), or not what the route takes.

    A route that reads another body (e.g. text/csv) documents it in openapi_extra's requestBody, and what it
    documents is what it accepts.
    """
    if request.method not in ("POST", "PUT", "PATCH"):
        return
    has_body = request.headers.get("content-length", "0") != "0" or "transfer-encoding" in request.headers
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    accepted = declared_media_types(request)
    if accepted is not None:
        if content_type not in accepted:
            raise HTTPException(
                415, f"send the body as {' or '.join(accepted)}, not {content_type or 'without a content type'}"
            )
        return
    is_json = content_type == "application/json" or (
        content_type.startswith("application/") and content_type.endswith("+json")
    )
    if has_body and not is_json:
        raise HTTPException(415, f"send the body as application/json, not {content_type or 'without a content type'}")


class BodySizeLimit:
    """413 problem+json for a body over the limit: at once by its Content-Length, or once that much has streamed.

    Starlette's own limit answers a declared oversize in plain text, so this one replaces it. A path in
    `limits` (e.g. a bulk import) has its own limit instead of max_bytes.
    """

    def __init__(self, app: ASGIApp, max_bytes: int, limits: Mapping[str, int] | None = None) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.limits = dict(limits or {})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        max_bytes = self.limits.get(scope["path"], self.max_bytes)
        declared = Headers(scope=scope).get("content-length", "")
        if declared.isdigit() and int(declared) > max_bytes:
            await problem(413, reason(413), _detail(max_bytes))(scope, receive, send)
            return
        received = 0

        async def receive_within_limit() -> Message:
            nonlocal received
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
