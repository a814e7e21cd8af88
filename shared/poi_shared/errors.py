"""RFC 9457 problem+json for every error, and 503 with Retry-After when a dependency is down."""

import logging
from typing import Any

import asyncpg
import nats.errors
import redis.exceptions
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger(__name__)
PROBLEM_JSON = "application/problem+json"
RETRY_AFTER_S = 5


class DependencyUnavailable(Exception):
    """A database, broker or cache the request needs does not answer."""

    def __init__(self, dependency: str) -> None:
        super().__init__(dependency)
        self.dependency = dependency


DEPENDENCY_ERRORS: tuple[type[BaseException], ...] = (
    DependencyUnavailable,
    OSError,
    asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError,
    asyncpg.InterfaceError,
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    nats.errors.Error,
    TimeoutError,
)


class ProblemResponse(JSONResponse):
    """A JSON response with the problem+json media type."""

    media_type = PROBLEM_JSON


def problem(
    status: int, title: str, detail: str | None = None, *, headers: dict[str, str] | None = None, **extra: Any
) -> ProblemResponse:
    """Build a problem+json response."""
    body: dict[str, Any] = {"type": "about:blank", "title": title, "status": status}
    if detail:
        body["detail"] = detail
    body.update(extra)
    return ProblemResponse(body, status_code=status, headers=headers)


def unavailable(dependency: str) -> ProblemResponse:
    """503 telling the client which dependency is down and when to retry."""
    return problem(
        503,
        "Service Unavailable",
        f"{dependency} does not answer; try again shortly",
        headers={"Retry-After": str(RETRY_AFTER_S)},
        dependency=dependency,
    )


def install_error_handlers(app: FastAPI) -> None:
    """Turn every error the app raises into problem+json."""

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> ProblemResponse:
        title = _reason(exc.status_code)
        detail = exc.detail if isinstance(exc.detail, str) and exc.detail != title else None
        return problem(exc.status_code, title, detail, headers=getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> ProblemResponse:
        errors = [
            {"location": ".".join(str(p) for p in e["loc"]), "message": e["msg"], "type": e["type"]}
            for e in exc.errors()
        ]
        summary = "; ".join(f"{e['location']}: {e['message']}" for e in errors[:5])
        return problem(422, "Unprocessable Content", summary, errors=errors)

    @app.exception_handler(Exception)
    async def unexpected_error(request: Request, exc: Exception) -> ProblemResponse:
        if isinstance(exc, DEPENDENCY_ERRORS):
            dependency = exc.dependency if isinstance(exc, DependencyUnavailable) else _dependency_of(exc)
            log.warning("dependency %s unavailable: %r", dependency, exc)
            return unavailable(dependency)
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return problem(500, "Internal Server Error", "an unexpected error occurred; it has been logged")


def _dependency_of(exc: BaseException) -> str:
    """Name the dependency behind a low-level error."""
    module = type(exc).__module__
    if module.startswith("asyncpg"):
        return "postgresql"
    if module.startswith("redis"):
        return "redis"
    if module.startswith("nats"):
        return "nats"
    return "a dependency"


def _reason(status: int) -> str:
    """The standard reason phrase of a status code."""
    from http import HTTPStatus

    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"
