"""/livez says the process runs; /readyz that this replica can answer its HTTP requests."""

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field

import asyncpg
import redis.asyncio as redis
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from nats.aio.client import Client as NATS

from poi_shared.errors import RETRY_AFTER_S, ProblemResponse, problem

# A check answers None (or anything but a string) when fine, a string saying why not, or raises.
Check = Callable[[], Awaitable[object]]
# A fact is reported in the body as it is (JSON), e.g. consumer lag or the age of the data.
Fact = Callable[[], Awaitable[object]]
# Checks run concurrently, each waited for this long, so /readyz answers well within 1 s: under any probe timeout.
CHECK_TIMEOUT_S = 0.5
JETSTREAM_INFO = "$JS.API.INFO"

router = APIRouter(tags=["health"])


class Probes:
    """Named probes, each waited for until a deadline, never started twice while one is still running."""

    # A probe past its deadline is not cancelled (cancelling can hang too: asyncpg waits for a frozen server to hear
    # the cancel); it runs on, and the next call waits for it instead of starting another, so a frozen dependency
    # never piles probes up.

    def __init__(self) -> None:
        self._running: dict[str, asyncio.Future[object]] = {}

    async def run(self, name: str, probe: Callable[[], Awaitable[object]], timeout_s: float) -> object:
        """The probe's result or error; TimeoutError if it has not answered within timeout_s."""
        task = self._running.get(name)
        if task is None or task.done():
            task = asyncio.ensure_future(probe())
            task.add_done_callback(_retrieve)
            self._running[name] = task
        done, _ = await asyncio.wait({task}, timeout=timeout_s)
        if not done:
            raise TimeoutError
        return task.result()


def _retrieve(task: asyncio.Future[object]) -> None:
    """Mark a finished probe's error as seen, for one nobody waited for any more."""
    if not task.cancelled():
        task.exception()


@dataclass(frozen=True)
class Readiness:
    """What /readyz runs: checks that decide readiness, checks only reported (degraded), and facts for the body."""

    required: Mapping[str, Check] = field(default_factory=dict)
    reported: Mapping[str, Check] = field(default_factory=dict)
    facts: Mapping[str, Fact] = field(default_factory=dict)
    probes: Probes = field(default_factory=Probes, compare=False, repr=False)


# Left out of the OpenAPI document: it is for the kubelet, and unlike every operation there it never answers 503.
@router.get("/livez", summary="The process is alive", include_in_schema=False)
async def livez() -> dict[str, str]:
    """Alive as long as the event loop answers; never looks at dependencies."""
    return {"status": "alive"}


@router.get("/readyz", summary="This replica can answer its HTTP requests", response_model=None)
async def readyz(request: Request) -> JSONResponse | ProblemResponse:
    """200 when every required check passes (degraded if a reported one fails); 503 with Retry-After otherwise."""
    readiness: Readiness | None = getattr(request.app.state, "readiness", None)
    if readiness is None:
        return problem(503, "Service Unavailable", "starting", headers={"Retry-After": str(RETRY_AFTER_S)})
    checks = {**readiness.required, **readiness.reported}
    check_names, fact_names = list(checks), list(readiness.facts)
    probes = readiness.probes
    results = await asyncio.gather(
        *(_check(probes, n, checks[n]) for n in check_names),
        *(_fact(probes, n, readiness.facts[n]) for n in fact_names),
    )
    report = dict(zip(check_names, results[: len(check_names)], strict=True))
    facts = dict(zip(fact_names, results[len(check_names) :], strict=True))
    failing = [n for n in readiness.required if report[n] != "ok"]
    degraded = [n for n in readiness.reported if report[n] != "ok"]
    if failing:
        return problem(
            503,
            "Service Unavailable",
            f"not ready: {', '.join(failing)}",
            headers={"Retry-After": str(RETRY_AFTER_S)},
            checks=report,
            degraded=degraded,
            **facts,
        )
    return JSONResponse(
        {"status": "degraded" if degraded else "ready", "checks": report, "degraded": degraded, **facts}
    )


async def _check(probes: Probes, name: str, check: Check) -> str:
    """'ok', or why the check failed."""
    try:
        result = await probes.run(f"check {name}", check, CHECK_TIMEOUT_S)
    except TimeoutError:
        return f"failed: no answer within {CHECK_TIMEOUT_S}s"
    except Exception as exc:
        return f"failed: {type(exc).__name__} {exc}".strip()
    return result if isinstance(result, str) else "ok"


async def _fact(probes: Probes, name: str, fact: Fact) -> object:
    """The fact's value, or why it could not be read."""
    try:
        return await probes.run(f"fact {name}", fact, CHECK_TIMEOUT_S)
    except TimeoutError:
        return f"unavailable: no answer within {CHECK_TIMEOUT_S}s"
    except Exception as exc:
        return f"unavailable: {type(exc).__name__} {exc}".strip()


async def postgresql_answers(pool: asyncpg.Pool) -> None:
    """A real query through the pool (so a pool that cannot give a connection fails it too)."""
    await pool.fetchval("SELECT 1", timeout=CHECK_TIMEOUT_S)


async def nats_answers(nc: NATS) -> None:
    """A round trip to JetStream's API (a stopped or frozen broker fails it)."""
    if not nc.is_connected:
        raise ConnectionError("not connected to NATS")
    # A request, not a flush: the client matches PONGs to PINGs in order, and a PING that timed out during a
    # freeze would make a later flush look answered.
    await nc.request(JETSTREAM_INFO, b"", timeout=CHECK_TIMEOUT_S)


async def redis_answers(cache: redis.Redis) -> None:
    """A PING to Redis."""
    await cache.ping()
