"""What a request must be before a route reads it: a JSON body, no larger than the limit."""

from fastapi import HTTPException, Request
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from poi_shared.errors import problem, reason


async def require_json_body(request: Request) -> None:
    """415 for a request body that is not JSON (FastAPI would otherwise validate its raw bytes)."""
    if request.method not in ("POST", "PUT", "PATCH"):
        return
    has_body = request.headers.get("content-length", "0") != "0" or "transfer-encoding" in request.headers
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    is_json = content_type == "application/json" or (
        content_type.startswith("application/") and content_type.endswith("+json")
    )
    if has_body and not is_json:
        raise HTTPException(415, f"send the body as application/json, not {content_type or 'without a content type'}")


class BodySizeLimit:
    """413 problem+json for a body over the limit: at once by its Content-Length, or once that much has streamed.

    Starlette's own limit answers a declared oversize in plain text, so this one replaces it.
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = Headers(scope=scope).get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_bytes:
            await problem(413, reason(413), self._detail())(scope, receive, send)
            return
        received = 0

        async def receive_within_limit() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    # Raised inside the route's read of the body, so the app's problem+json handler answers it.
                    raise HTTPException(413, self._detail())
            return message

        await self.app(scope, receive_within_limit, send)

    def _detail(self) -> str:
        return f"the body may hold at most {self.max_bytes} bytes"
