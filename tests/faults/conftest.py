"""A stack of the four services as processes whose servers a test may kill, cut and restart.

NATS and Redis are this module's own (embedded, restartable on the same port and store); PostgreSQL is the
session's server reached through a TCP proxy the test can cut. Everything here is bounded in time: nothing in
these tests measures speed, each wait has a generous bound so CI never flakes.
"""

import asyncio
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import nats
import pytest

from poi_cli import embedded, stack
from poi_shared.auth import issue_token
from poi_shared.envelope import OutgoingMessage
from tests.support.proxy_thread import ProxyThread

pytestmark = [pytest.mark.e2e, pytest.mark.faults]
SECRET = "faults-secret-not-for-production-0123456789"
POLL_BOUND_S = 60.0
READY_BOUND_S = 90.0
# Short waits and retries so each fault resolves within seconds; the defaults are for production.
FAST = {
    "DB_ACQUIRE_TIMEOUT_S": "1",
    "PUBLISH_TIMEOUT_S": "2",
    "CONSUMER_RETRY_INITIAL_S": "0.1",
    "CONSUMER_RETRY_MAX_S": "1",
    "CONSUMER_ACK_WAIT_S": "5",
    "CONSUMER_POISON_BUDGET": "2",
    "STARTUP_TIMEOUT_S": "60",
}
# Notify's status consumers commit a fetch at once: small fetches, so a burst takes many commits and a kill of
# notify lands in the middle of it (test_consumer_killed).
OWN = {"status": {"CACHE_TTL_S": "4"}, "notify": {"CONSUMER_BATCH": "8"}}

POINT: dict[str, Any] = {
    "name_uk": "Пункт незламності — Ліцей №7",
    "category": "state",
    "host_type": "school",
    "lat": 50.4501,
    "lon": 30.5234,
    "katotth": "UA80000000000093317",
    "address_uk": "вул. Хрещатик, 7, Київ",
    "settlement": "Київ",
    "capacity": 500,
    "services": ["heat", "charging"],
    "visibility": "public",
}


@dataclass
class FaultStack:
    """The services, their servers and the handles to break them."""

    root: Path
    namespace: str
    nats: embedded.ServerProcess
    redis: embedded.ServerProcess
    postgres: ProxyThread
    database_urls: dict[str, str]  # straight to PostgreSQL, for the test's own checks
    ports: dict[str, int]
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    extra_env: dict[str, dict[str, str]] = field(default_factory=dict)  # per service, POI_<SERVICE>_ names

    @property
    def urls(self) -> dict[str, str]:
        return {service: f"http://127.0.0.1:{port}" for service, port in self.ports.items()}

    def headers(self, *roles: str, subject: str = "faults") -> dict[str, str]:
        """Authorization for a token the services accept."""
        return {"Authorization": f"Bearer {issue_token(SECRET, subject=subject, roles=list(roles))}"}

    def env(self, service: str) -> dict[str, str]:
        infra = stack.Infrastructure(
            self.postgres.through(self.database_urls["registry"]), self.nats.url, self.redis.url
        )
        proxied = {name: self.postgres.through(url) for name, url in self.database_urls.items()}
        env = stack.service_env(service, infra, proxied, namespace=self.namespace, secret=SECRET)
        prefix = f"POI_{service.upper()}_"
        own = {**FAST, **OWN.get(service, {}), **self.extra_env.get(service, {})}
        env.update({prefix + name: value for name, value in own.items()})
        env["POI_AUTH_SECRET"] = SECRET
        return env

    def start(self, *services: str) -> None:
        """Start services (again) and wait until each is ready."""
        for service in services:
            log = self.root / "logs" / f"{service}.log"
            self.processes[service] = stack.start_service(service, self.ports[service], self.env(service), log)
        try:
            stack.wait_ready({s: self.ports[s] for s in services}, self.processes, timeout_s=READY_BOUND_S)
        except (TimeoutError, RuntimeError) as exc:
            raise RuntimeError(f"{exc}\n{self.logs()}") from exc

    def kill(self, service: str) -> None:
        """SIGKILL a service: no drain, no nak, whatever it held in hand is lost with it."""
        process = self.processes.pop(service)
        process.kill()
        process.wait(READY_BOUND_S)

    def kill_nats(self) -> None:
        """SIGKILL the broker: whatever it had not written to its store is gone."""
        self.nats.process.kill()
        self.nats.process.wait(READY_BOUND_S)

    def start_nats(self) -> None:
        """Start the broker again on the same port and store.

        From the main thread only: servers die with the thread that started them (PR_SET_PDEATHSIG).
        """
        self.nats = self.nats.restart()

    def logs(self) -> str:
        return "\n".join(
            f"--- {p.name}\n{embedded.log_tail(p, 40)}" for p in sorted((self.root / "logs").glob("*.log"))
        )


def eventually(probe: Callable[[], Any], what: str, bound_s: float = POLL_BOUND_S) -> Any:
    """Poll until probe returns something truthy."""
    deadline = time.monotonic() + bound_s
    while time.monotonic() < deadline:
        if result := probe():
            return result
        time.sleep(0.1)
    raise AssertionError(f"{what} did not happen within {bound_s:.0f}s")


async def _drop_databases(server_url: str, namespace: str) -> None:
    for name in stack.DATABASE_SERVICES:
        # A connection of its own per database: a forced drop may take the asking connection down with it.
        conn = await asyncpg.connect(server_url)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{stack.database_name(namespace, name)}" WITH (FORCE)')
        except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError):
            pass
        finally:
            await conn.close()


@contextmanager
def fault_stack(
    infra: stack.Infrastructure,
    namespace: str,
    *,
    ports: dict[str, int] | None = None,
    extra_env: dict[str, dict[str, str]] | None = None,
) -> Iterator[FaultStack]:
    """Own NATS and Redis, PostgreSQL behind a proxy, and the four services (extra_env: POI_<SERVICE>_ settings)."""
    with tempfile.TemporaryDirectory(prefix="poi-test-faults-") as tmp:
        root = Path(tmp)
        started: list[embedded.ServerProcess] = []
        proxy = ProxyThread(infra.database_url)
        try:
            started.append(embedded.start_nats(root, embedded.free_port()))
            started.append(embedded.start_redis(root, embedded.free_port(), durable=False))
            database_urls = asyncio.run(stack.prepare_databases(infra.database_url, namespace))
            ports = ports or {name: embedded.free_port() for name in stack.SERVICE_PORTS}
            faults = FaultStack(
                root, namespace, started[0], started[1], proxy, database_urls, ports, extra_env=extra_env or {}
            )
            try:
                faults.start(*stack.SERVICE_PORTS)
                yield faults
            finally:
                stack.stop_services(faults.processes)
                started = [faults.nats, faults.redis]
        finally:
            proxy.close()
            for server in reversed(started):
                embedded.stop(server)
            asyncio.run(_drop_databases(infra.database_url, namespace))


@pytest.fixture(scope="package")
def faults(infra: stack.Infrastructure, namespace: str) -> Iterator[FaultStack]:
    """The stack shared by the fault tests to keep them quick; each puts back what it broke."""
    with fault_stack(infra, f"{namespace}f") as running:
        yield running


def register(client: httpx.Client, faults: FaultStack, **changes: Any) -> str:
    """Register a point as an admin; returns its id once status knows it."""
    response = client.post(
        f"{faults.urls['registry']}/v1/points", json={**POINT, **changes}, headers=faults.headers("admin")
    )
    assert response.status_code == 201, response.text
    point_id = response.json()["id"]
    eventually(
        lambda: client.get(f"{faults.urls['status']}/v1/points/{point_id}/status").status_code == 200,
        "status learns the point",
    )
    return str(point_id)


async def publish(faults: FaultStack, messages: list[OutgoingMessage]) -> None:
    """Publish straight onto the broker, each stored before the next."""
    nc = await nats.connect(faults.nats.url)
    try:
        js = nc.jetstream()
        for message in messages:
            await js.publish(message.subject, message.body, headers=message.headers)
    finally:
        await nc.close()


async def observed(faults: FaultStack, point_ids: list[uuid.UUID]) -> list[uuid.UUID]:
    """Which of these points notify has an observation of, one entry per row."""
    conn = await asyncpg.connect(faults.database_urls["notify"])
    try:
        rows = await conn.fetch("SELECT point_id FROM status_observations WHERE point_id = ANY($1)", point_ids)
        return [row["point_id"] for row in rows]
    finally:
        await conn.close()
