"""The development stack: infrastructure (given or embedded), databases, migrations and the four services."""

import fcntl
import hashlib
import hmac
import json
import os
import re
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

import httpx
import nats
import psutil
from nats.js import JetStreamContext

from poi_cli import embedded
from poi_notify.app import MIGRATIONS as NOTIFY_MIGRATIONS
from poi_registry.app import MIGRATIONS as REGISTRY_MIGRATIONS
from poi_shared import db
from poi_shared.settings import NAMESPACE_PATTERN
from poi_status.app import MIGRATIONS as STATUS_MIGRATIONS

SERVICE_PORTS = {"registry": 8001, "status": 8002, "search": 8003, "notify": 8004}
EMBEDDED_PORTS = {"postgres": 55432, "nats": 54222, "redis": 56379}
DATABASE_SERVICES = {"registry": REGISTRY_MIGRATIONS, "status": STATUS_MIGRATIONS, "notify": NOTIFY_MIGRATIONS}
LOCK_FILE = "poi-run.lock"
LOCAL_RATE_LIMIT_IP = 1_000_000  # search's requests per minute from one IP on a local stack


class StackBusy(RuntimeError):
    """Another `poi run`, or another program, holds the data directory or a port this one needs."""


@dataclass
class Infrastructure:
    """Server URLs for PostgreSQL, NATS and Redis, and the embedded servers started for them."""

    database_url: str
    nats_url: str
    redis_url: str
    started: list[embedded.ServerProcess] = field(default_factory=list)

    def stop(self) -> None:
        """Stop the embedded servers, last started first."""
        for server in reversed(self.started):
            embedded.stop(server)


def start_infrastructure(
    root: Path,
    *,
    database_url: str | None,
    nats_url: str | None,
    redis_url: str | None,
    ports: dict[str, int],
    durable: bool = True,
) -> Infrastructure:
    """Use the given URLs; start embedded servers for the rest."""
    started: list[embedded.ServerProcess] = []
    try:
        if database_url is None:
            started.append(embedded.start_postgres(root, ports["postgres"], durable=durable))
            database_url = started[-1].url
        if nats_url is None:
            started.append(embedded.start_nats(root, ports["nats"]))
            nats_url = started[-1].url
        if redis_url is None:
            started.append(embedded.start_redis(root, ports["redis"], durable=durable))
            redis_url = started[-1].url
    except BaseException:
        Infrastructure("", "", "", started).stop()
        raise
    return Infrastructure(database_url, nats_url, redis_url, started)


def check_namespace(namespace: str) -> str:
    """The namespace if it can prefix databases, streams and keys as is; ValueError otherwise."""
    if not re.fullmatch(NAMESPACE_PATTERN, namespace):
        raise ValueError(
            f"namespace {namespace!r} must be a lower-case letter followed by at most 15 lower-case letters or digits"
        )
    return namespace


def database_name(namespace: str, service: str) -> str:
    """Each service owns its own database on the server; the name is quoted nowhere, so it is checked here."""
    return f"{check_namespace(namespace)}_{service}"


async def prepare_databases(server_url: str, namespace: str) -> dict[str, str]:
    """Create each service's database and apply its migrations; returns their URLs."""
    urls = {}
    for service, migrations in DATABASE_SERVICES.items():
        name = database_name(namespace, service)
        await db.ensure_database(server_url, name)
        urls[service] = db.database_url(server_url, name)
        await db.migrate(urls[service], migrations)
    return urls


def lock_data_dir(data_dir: Path, ports: dict[str, int]) -> TextIO:
    """Hold the data directory for this `poi run` while the returned file stays open; StackBusy if another does.

    The lock file names its holder (pid, data directory, ports) so that a second run can say who is in its way.
    """
    data_dir.mkdir(parents=True, exist_ok=True)
    lock = (data_dir / LOCK_FILE).open("a+")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock.close()
        holder = _lock_holder(data_dir / LOCK_FILE)
        ports_held = ", ".join(f"{name} {port}" for name, port in holder.get("ports", {}).items())
        raise StackBusy(
            f"another {_poi_run(holder, data_dir)} is running and holds ports {ports_held or '(starting)'}; "
            "stop it first (Ctrl-C in its terminal)"
        ) from None
    lock.seek(0)
    lock.truncate()
    json.dump({"pid": os.getpid(), "data_dir": str(data_dir), "ports": ports}, lock)
    lock.flush()
    return lock


def _lock_holder(lock_file: Path) -> dict:
    """What the holder of a lock file wrote there (nothing yet if it has only just taken it)."""
    try:
        holder = json.loads(lock_file.read_text())
    except (OSError, ValueError):
        return {}
    return holder if isinstance(holder, dict) else {}


def _poi_run(holder: dict, data_dir: Path) -> str:
    return f"poi run (pid {holder.get('pid', '?')}, data dir {holder.get('data_dir', data_dir)})"


def check_ports_free(ports: dict[str, int]) -> None:
    """StackBusy naming every port that something already listens on, and who, as far as this user may see."""
    busy = {name: port for name, port in ports.items() if embedded.port_open(port)}
    if not busy:
        return
    pids = _listening_pids(set(busy.values()))
    by_holder: dict[str, list[str]] = {}
    for name, port in busy.items():
        by_holder.setdefault(_describe_process(pids.get(port)), []).append(f"{name} {port}")
    taken = "; ".join(f"{', '.join(held)} held by {holder}" for holder, held in by_holder.items())
    raise StackBusy(f"ports in use: {taken}. Stop it, or choose another --port-offset.")


def _listening_pids(ports: set[int]) -> dict[int, int]:
    try:
        connections = psutil.net_connections(kind="tcp")
    except psutil.AccessDenied:
        return {}
    return {
        c.laddr.port: c.pid
        for c in connections
        if c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.port in ports and c.pid
    }


def _describe_process(pid: int | None) -> str:
    """Another poi run if the process is one or was started by one (it keeps its lock file open), else its command."""
    if pid is None:
        return "another program"
    try:
        process = psutil.Process(pid)
        for candidate in (process, *process.parents()):
            for opened in candidate.open_files():
                if Path(opened.path).name == LOCK_FILE:
                    lock_file = Path(opened.path)
                    return f"another {_poi_run(_lock_holder(lock_file), lock_file.parent)}"
        return f"pid {pid} ({' '.join(process.cmdline())[:80]})"
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return f"pid {pid}"


def auth_secret(data_dir: Path) -> str:
    """The development signing secret: POI_AUTH_SECRET, or one kept under the data directory."""
    if os.environ.get("POI_AUTH_SECRET"):
        return os.environ["POI_AUTH_SECRET"]
    path = data_dir / "auth-secret"
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_urlsafe(32))
        path.chmod(0o600)
    return path.read_text().strip()


def service_env(
    service: str, infra: Infrastructure, database_urls: dict[str, str], *, namespace: str, secret: str
) -> dict[str, str]:
    """The environment one service process runs with."""
    prefix = f"POI_{service.upper()}_"
    env = {
        **os.environ,
        f"{prefix}NATS_URL": infra.nats_url,
        f"{prefix}NAMESPACE": namespace,
        "POI_AUTH_SECRET": secret,
    }
    if service in database_urls:
        env[f"{prefix}DATABASE_URL"] = database_urls[service]
    if service in ("status", "search", "notify"):  # current state; shared rate-limit counters
        env[f"{prefix}REDIS_URL"] = infra.redis_url
    if service == "notify":
        # A development stack's phone-hash key, derived from its signing secret so it stays the same across runs.
        derived = hmac.new(secret.encode(), b"poi-notify-phone-key", hashlib.sha256).hexdigest()
        env.setdefault(f"{prefix}PHONE_KEY", derived)
    if service == "search":
        # A local stack serves one developer's scripts and tests from 127.0.0.1: one IP, many requests.
        env.setdefault(f"{prefix}RATE_LIMIT_IP", str(LOCAL_RATE_LIMIT_IP))
    return env


# Kannel reuses its connections for delivery reports and never retries one that fails: notify must not close an
# idle connection before Kannel does (its http-timeout is 240 s by default), or a report sent on
# it as it closes is reset and lost.
SERVER_OPTIONS = {"notify": ["--timeout-keep-alive", "300"]}


def start_service(service: str, port: int, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """Run one service under uvicorn as its own process."""
    log.parent.mkdir(parents=True, exist_ok=True)
    argv = [sys.executable, "-m", "uvicorn", f"poi_{service}.app:create_app", "--factory"]
    argv += ["--host", "127.0.0.1", "--port", str(port), "--no-access-log", "--timeout-graceful-shutdown", "10"]
    argv += SERVER_OPTIONS.get(service, [])
    with log.open("ab") as out:
        return subprocess.Popen(
            argv,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            preexec_fn=embedded._die_with_parent,
        )


def wait_ready(ports: dict[str, int], processes: dict[str, subprocess.Popen[bytes]], timeout_s: float) -> None:
    """Wait until every service's /readyz answers 200; fail early if one exits."""
    deadline = time.monotonic() + timeout_s
    pending = dict(ports)
    with httpx.Client(timeout=2) as client:
        while pending:
            for service, port in list(pending.items()):
                if processes[service].poll() is not None:
                    raise RuntimeError(f"{service} {embedded.exit_reason(processes[service].returncode)}")
                try:
                    if client.get(f"http://127.0.0.1:{port}/readyz").status_code == 200:
                        del pending[service]
                except httpx.HTTPError:
                    pass
            if pending and time.monotonic() > deadline:
                raise TimeoutError(f"not ready after {timeout_s:.0f}s: {', '.join(pending)}")
            time.sleep(0.2)


def stop_services(processes: dict[str, subprocess.Popen[bytes]], timeout_s: float = 15.0) -> None:
    """SIGTERM every service, wait for a graceful drain, SIGKILL stragglers."""
    for proc in processes.values():
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    for proc in processes.values():
        try:
            proc.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@asynccontextmanager
async def command_jetstream(url: str, *, name: str) -> AsyncIterator[JetStreamContext]:
    """A short-lived JetStream connection for one CLI command, which reports the final error itself."""

    async def quiet(error: Exception) -> None:
        """The command reports the final error itself, once."""

    nc = await nats.connect(
        url,
        name=name,
        connect_timeout=3,
        allow_reconnect=False,
        max_reconnect_attempts=1,
        reconnect_time_wait=0.5,
        error_cb=quiet,
    )
    try:
        yield nc.jetstream()
    finally:
        await nc.close()
