"""PostgreSQL cut away under load: writes answer 503 with Retry-After, readiness goes red then green, no restart."""

import concurrent.futures
import uuid

import httpx
import pytest

from tests.faults.conftest import POINT, FaultStack, eventually, register

pytestmark = [pytest.mark.e2e, pytest.mark.faults]
WRITERS = 4
WRITES_EACH = 6
CLIENT_TIMEOUT_S = 10.0  # the bound on every answer: a hang fails the test with a timeout
DATABASE_SERVICES = ("registry", "status", "notify")


def write(client: httpx.Client, faults: FaultStack, point_id: str, n: int) -> httpx.Response:
    """One of the two writes the outage must not break: a status report or a new point."""
    if n % 2:
        return client.post(
            f"{faults.urls['status']}/v1/points/{point_id}/status",
            json={"state": "open", "occupancy": n},
            headers={**faults.headers("admin"), "Idempotency-Key": str(uuid.uuid4())},
        )
    return client.post(
        f"{faults.urls['registry']}/v1/points",
        json={**POINT, "name_uk": f"Пункт незламності №{n}"},
        headers={**faults.headers("admin"), "Idempotency-Key": str(uuid.uuid4())},
    )


def readiness(client: httpx.Client, faults: FaultStack) -> dict[str, int]:
    return {service: client.get(f"{faults.urls[service]}/readyz").status_code for service in DATABASE_SERVICES}


def test_writes_answer_503_while_postgresql_is_away_and_recover_without_restart(faults: FaultStack) -> None:
    with httpx.Client(timeout=CLIENT_TIMEOUT_S) as client:
        point_id = register(client, faults)
        pids = {service: process.pid for service, process in faults.processes.items()}
        faults.postgres.cut()
        try:
            eventually(lambda: set(readiness(client, faults).values()) == {503}, "every database service is unready")

            def writer(k: int) -> list[httpx.Response]:
                with httpx.Client(timeout=CLIENT_TIMEOUT_S) as own:
                    try:
                        return [write(own, faults, point_id, k * WRITES_EACH + i) for i in range(WRITES_EACH)]
                    except httpx.TransportError as exc:
                        raise AssertionError(f"{exc!r}\n{faults.logs()}") from exc

            with concurrent.futures.ThreadPoolExecutor(WRITERS) as pool:
                answers = [r for batch in pool.map(writer, range(WRITERS)) for r in batch]
            ready = client.get(f"{faults.urls['status']}/readyz")
        finally:
            faults.postgres.restore()

        for answer in answers:
            where = f"{answer.request.method} {answer.request.url.path}"
            assert answer.status_code == 503, f"{where}: {answer.status_code} {answer.text}"
            assert int(answer.headers["retry-after"]) > 0, where
            assert answer.headers["content-type"] == "application/problem+json", where
            assert "Traceback" not in answer.text
        assert ready.status_code == 503 and "retry-after" in ready.headers

        eventually(lambda: set(readiness(client, faults).values()) == {200}, "every database service is ready again")
        assert write(client, faults, point_id, 1).status_code == 201
        assert write(client, faults, point_id, 2).status_code == 201
        # Each 503 was an answer, not a crash: uvicorn logged no unhandled error (and closed no connection for one).
        for service in DATABASE_SERVICES:
            assert "Exception in ASGI application" not in (faults.root / "logs" / f"{service}.log").read_text()
        # The same processes recovered: nothing restarted them.
        assert {service: process.pid for service, process in faults.processes.items()} == pids
        assert all(process.poll() is None for process in faults.processes.values())
