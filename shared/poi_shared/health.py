"""/livez says the process runs; /readyz that every dependency answers."""

import asyncio
from collections.abc import Awaitable, Callable

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from poi_shared.errors import RETRY_AFTER_S, ProblemResponse, problem

Check = Callable[[], Awaitable[object]]
CHECK_TIMEOUT_S = 2.0

router = APIRouter(tags=["health"])


# Left out of the OpenAPI document: it is for the kubelet, and unlike every operation there it never answers 503.
@router.get("/livez", summary="The process is alive", include_in_schema=False)
async def livez() -> dict[str, str]:
    """Alive as long as the event loop answers; never looks at dependencies."""
    return {"status": "alive"}


@router.get("/readyz", summary="Every dependency answers", response_model=None)
async def readyz(request: Request) -> JSONResponse | ProblemResponse:
    """Run the app's readiness checks; 503 with Retry-After when any fails."""
    checks: dict[str, Check] = getattr(request.app.state, "readiness", {})
    if not checks:
        return problem(503, "Service Unavailable", "starting", headers={"Retry-After": str(RETRY_AFTER_S)})
    names = list(checks)
    results = await asyncio.gather(*(_run(checks[n]) for n in names))
    report = dict(zip(names, results, strict=True))
    if all(r == "ok" for r in report.values()):
        return JSONResponse({"status": "ready", "checks": report})
    failing = ", ".join(n for n, r in report.items() if r != "ok")
    return problem(
        503,
        "Service Unavailable",
        f"not ready: {failing}",
        headers={"Retry-After": str(RETRY_AFTER_S)},
        checks=report,
    )


async def _run(check: Check) -> str:
    """'ok', or why the check failed."""
    try:
        result = await asyncio.wait_for(check(), CHECK_TIMEOUT_S)
    except Exception as exc:
        return f"failed: {type(exc).__name__} {exc}".strip()
    # A check says why it is not ready by returning a string; anything else means it answered.
    return result if isinstance(result, str) else "ok"
