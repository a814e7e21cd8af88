"""RFC 9457 problem+json for every error, and 503 with Retry-After when a dependency is down."""

import logging
from http import HTTPStatus
from typing import Any

import asyncpg
import nats.errors
import redis.exceptions
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger(__name__)
PROBLEM_JSON = "application/problem+json"
RETRY_AFTER_S = 5
# RFC 9110 renamed these; Python's HTTPStatus still has the older RFC 7231 phrases.
RFC9110_TITLES = {
    413: "Content Too Large",
    414: "URI Too Long",
    416: "Range Not Satisfiable",
    422: "Unprocessable Content",
}


class FieldProblem(BaseModel):
    """One invalid part of a request."""

    location: str = Field(description="Where: body.<field>, query.<name>, path.<name> or header.<name>.")
    message: str
    type: str = Field(description="A machine-readable error type, e.g. missing, int_type, forbidden_character.")


class Problem(BaseModel):
    """RFC 9457 problem details, the body of every error response."""

    model_config = ConfigDict(extra="allow")

    type: str = Field(default="about:blank", description="A URI naming the problem type.")
    title: str = Field(description="The status code's RFC 9110 reason phrase.")
    status: int = Field(ge=400, le=599)
    detail: str | None = Field(default=None, description="What went wrong, for people.")
    instance: str | None = None
    errors: list[FieldProblem] | None = Field(default=None, description="With 422: each invalid part of the request.")
    dependency: str | None = Field(default=None, description="With 503: the dependency that does not answer.")


class DependencyUnavailable(Exception):
    """A database, broker or cache the request needs does not answer."""

    def __init__(self, dependency: str) -> None:
        super().__init__(dependency)
        self.dependency = dependency


DEPENDENCY_ERRORS: tuple[type[Exception], ...] = (
    DependencyUnavailable,
    OSError,
    asyncpg.PostgresConnectionError,
    # Server shutting down, restarting, starting up, or cancelling a statement (SQLSTATE class 57).
    asyncpg.exceptions.OperatorInterventionError,
    # Too many connections, disk full, out of memory (SQLSTATE class 53).
    asyncpg.exceptions.InsufficientResourcesError,
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
        title = reason(exc.status_code)
        detail = exc.detail if isinstance(exc.detail, str) and exc.detail != title else None
        return problem(exc.status_code, title, detail, headers=getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> ProblemResponse:
        errors = [_field_problem(e) for e in exc.errors()]
        summary = "; ".join(f"{e['location']}: {e['message']}" for e in errors[:5])
        return problem(422, reason(422), summary, errors=errors)

    async def dependency_error(request: Request, exc: Exception) -> ProblemResponse:
        dependency = exc.dependency if isinstance(exc, DependencyUnavailable) else _dependency_of(exc)
        log.warning("dependency %s unavailable: %r", dependency, exc)
        return unavailable(dependency)

    # Handled per class, inside the app: a handler for Exception runs in Starlette's outermost middleware, which
    # raises the error again after answering, so uvicorn logs a traceback and closes the client's connection.
    for error in DEPENDENCY_ERRORS:
        app.add_exception_handler(error, dependency_error)

    @app.exception_handler(Exception)
    async def unexpected_error(request: Request, exc: Exception) -> ProblemResponse:
        if isinstance(exc, DEPENDENCY_ERRORS):  # raised outside the routes (in a middleware)
            return await dependency_error(request, exc)
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


def reason(status: int) -> str:
    """The RFC 9110 reason phrase of a status code: every problem's title."""
    if status in RFC9110_TITLES:
        return RFC9110_TITLES[status]
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def invalid(location: tuple[str | int, ...], message: str, error_type: str = "value_error") -> RequestValidationError:
    """A 422 naming the field, for a check no model can express (e.g. a limit from settings)."""
    return RequestValidationError([{"loc": location, "msg": message, "type": error_type}])


def _field_problem(error: Any) -> dict[str, str]:
    """One validation error as the problem's errors list shows it."""
    if error["type"] == "json_invalid":
        # FastAPI puts the character offset into the location; the body as a whole is what is wrong.
        position = error["loc"][-1]
        cause = error.get("ctx", {}).get("error", "invalid JSON")
        return {
            "location": "body",
            "message": f"not valid JSON: {cause} at character {position}",
            "type": "json_invalid",
        }
    return {"location": ".".join(str(p) for p in error["loc"]), "message": error["msg"], "type": error["type"]}
