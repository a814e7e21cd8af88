"""The four services as real processes against the session's servers."""

import asyncio
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from poi_cli import embedded, stack
from poi_shared.auth import issue_token

pytestmark = pytest.mark.e2e
SECRET = "e2e-secret-not-for-production-0123456789"


@dataclass
class RunningStack:
    """Where each service listens, its database URL, and how to mint tokens for it."""

    urls: dict[str, str]
    database_urls: dict[str, str]
    infra: stack.Infrastructure
    namespace: str
    logs: Path | None = None  # each service's log, <service>.log

    def token(self, roles: list[str], *, katotth: list[str] | None = None, points: list[str] | None = None) -> str:
        """A bearer token the services accept."""
        return issue_token(SECRET, subject="e2e-user", roles=roles, katotth=katotth, points=points)


@pytest.fixture(scope="session")
def services(
    infra: stack.Infrastructure, namespace: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningStack]:
    """Start registry, status, search and notify the way `poi run` does, and stop them at the end."""
    logs = Path(tmp_path_factory.mktemp("service-logs"))
    database_urls = asyncio.run(stack.prepare_databases(infra.database_url, namespace))
    ports = {name: embedded.free_port() for name in stack.SERVICE_PORTS}
    processes: dict[str, subprocess.Popen[bytes]] = {}
    try:
        for service, port in ports.items():
            env = stack.service_env(service, infra, database_urls, namespace=namespace, secret=SECRET)
            processes[service] = stack.start_service(service, port, env, logs / f"{service}.log")
        try:
            stack.wait_ready(ports, processes, timeout_s=90)
        except (TimeoutError, RuntimeError) as exc:
            dump = "\n".join(f"--- {p.name}\n{p.read_text()[-3000:]}" for p in logs.glob("*.log"))
            raise RuntimeError(f"{exc}\n{dump}") from exc
        urls = {s: f"http://127.0.0.1:{p}" for s, p in ports.items()}
        yield RunningStack(urls, database_urls, infra, namespace, logs)
    finally:
        stack.stop_services(processes)
