"""NATS killed and restarted while operators report at a steady rate: every accepted report arrives once."""

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable

import asyncpg
import httpx
import pytest

from tests.faults.conftest import POLL_BOUND_S, FaultStack, eventually, register

pytestmark = [pytest.mark.e2e, pytest.mark.faults]
REPORTS = 60  # at about 10 a second over two points; the broker is away for 2 s of it
INTERVAL_S = 0.1
KILL_AT, RESTART_AT = 15, 35  # the broker is away for 20 reports, about 2 s


VERSIONS = {
    "status": "SELECT version FROM status_reports WHERE point_id = $1 ORDER BY version",
    "notify": "SELECT version FROM status_observations WHERE point_id = $1 ORDER BY version",
}


async def versions(faults: FaultStack, service: str, point_id: str) -> list[int]:
    """The versions of a point's status a service has stored, one row each."""
    conn = await asyncpg.connect(faults.database_urls[service])
    try:
        rows = await conn.fetch(VERSIONS[service], uuid.UUID(point_id))
        return [row["version"] for row in rows]
    finally:
        await conn.close()


def occupancy_in_search(client: httpx.Client, faults: FaultStack, point_id: str) -> int | None:
    response = client.get(
        f"{faults.urls['search']}/v1/search/nearest", params={"lat": 50.45, "lon": 30.52, "limit": 50}
    )
    if response.status_code != 200:
        return None
    hit = next((item for item in response.json()["items"] if item["id"] == point_id), None)
    return hit["status"]["occupancy"] if hit and hit["status"] else None


async def test_every_accepted_report_survives_a_broker_restart_once(faults: FaultStack) -> None:
    with httpx.Client(timeout=15) as client:
        points = [register(client, faults), register(client, faults)]
        accepted: dict[str, dict[int, int]] = {p: {} for p in points}  # point -> version -> occupancy
        refused: list[int] = []
        try:
            for n in range(1, REPORTS + 1):
                point_id = points[n % 2]
                response = client.post(
                    f"{faults.urls['status']}/v1/points/{point_id}/status",
                    json={"state": "open", "occupancy": n},
                    headers={**faults.headers("admin"), "Idempotency-Key": str(uuid.uuid4())},
                )
                if response.status_code == 201:
                    accepted[point_id][response.json()["version"]] = n
                else:
                    refused.append(response.status_code)
                if n == KILL_AT:
                    faults.kill_nats()
                if n == RESTART_AT:
                    faults.start_nats()
                time.sleep(INTERVAL_S)
        finally:
            if faults.nats.process.poll() is not None:
                faults.start_nats()

        # A broker outage never stops a write: the report and its event are committed together (outbox).
        assert not refused, refused
        for point_id in points:
            last = accepted[point_id][max(accepted[point_id])]
            eventually(
                lambda p=point_id, n=last: occupancy_in_search(client, faults, p) == n, "search shows the last report"
            )

    for point_id in points:
        sent = sorted(accepted[point_id])
        assert await versions(faults, "status", point_id) == sent
        seen = await settled(lambda p=point_id: versions(faults, "notify", p), len(sent))
        assert seen == sent  # each accepted report observed by notify exactly once, none twice


async def settled(probe: Callable[[], Awaitable[list[int]]], count: int) -> list[int]:
    """Poll probe until it returns at least count rows; then once more after a pause, so a late duplicate shows."""
    async with asyncio.timeout(POLL_BOUND_S):
        while len(await probe()) < count:
            await asyncio.sleep(0.2)
    await asyncio.sleep(1.0)
    return await probe()
