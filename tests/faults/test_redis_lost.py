"""Redis lost: status and search reads keep answering; status's current state is rebuilt from PostgreSQL."""

import uuid

import httpx
import pytest
import redis

from poi_shared.contracts import StatusState
from poi_status.cache import decode, redis_key
from tests.faults.conftest import FaultStack, eventually, register

pytestmark = [pytest.mark.e2e, pytest.mark.faults]
READS = 10


def cached(faults: FaultStack, point_id: str) -> StatusState | None:
    """The status Redis holds for the point, if any."""
    with redis.Redis.from_url(faults.redis.url, socket_timeout=2) as cache:
        raw = cache.get(redis_key(faults.namespace, uuid.UUID(point_id)))
    return decode(raw) if raw else None


def test_reads_keep_serving_without_redis_and_the_cache_is_rebuilt(faults: FaultStack) -> None:
    with httpx.Client(timeout=10) as client:
        point_id = register(client, faults)
        report = client.post(
            f"{faults.urls['status']}/v1/points/{point_id}/status",
            json={"state": "open", "occupancy": 42},
            headers={**faults.headers("admin"), "Idempotency-Key": str(uuid.uuid4())},
        )
        assert report.status_code == 201, report.text
        version = report.json()["version"]
        eventually(lambda: cached(faults, point_id), "the status is cached")

        faults.redis.process.kill()  # its data is gone with it (no append-only file)
        faults.redis.process.wait(30)
        try:
            for _ in range(READS):
                status = client.get(f"{faults.urls['status']}/v1/points/{point_id}/status")
                assert status.status_code == 200, status.text
                assert status.json()["version"] == version and status.json()["occupancy"] == 42
                found = client.get(f"{faults.urls['search']}/v1/search/nearest", params={"lat": 50.45, "lon": 30.52})
                assert found.status_code == 200, found.text
            # A report while Redis is away is still accepted: PostgreSQL holds the status, the cache is a copy.
            later = client.post(
                f"{faults.urls['status']}/v1/points/{point_id}/status",
                json={"occupancy": 43},
                headers={**faults.headers("admin"), "Idempotency-Key": str(uuid.uuid4())},
            )
            assert later.status_code == 201, later.text
            assert client.get(f"{faults.urls['status']}/readyz").status_code == 200
        finally:
            faults.redis = faults.redis.restart()  # empty, as after losing its data

        rebuilt = eventually(
            lambda: (entry := cached(faults, point_id)) and entry.version == later.json()["version"] and entry,
            "the keeper rebuilds the status in Redis from PostgreSQL",
        )
        assert rebuilt.occupancy == 43
        status = client.get(f"{faults.urls['status']}/v1/points/{point_id}/status")
        assert status.status_code == 200 and status.json()["occupancy"] == 43
