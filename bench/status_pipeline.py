"""The status pipeline for benchmarks: servers, a namespace of its own, 17,000 points, and the services as processes.

PostgreSQL, NATS and Redis are those of POI_DATABASE_URL, POI_NATS_URL and POI_REDIS_URL when set, else embedded
ones under a temporary directory (as `poi run` starts them). The points are published to the POINTS stream as the
registry's relay would publish them; status, its relay, search and notify run as processes of their own.
"""

import asyncio
import collections
import os
import secrets
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from uuid import uuid4

import asyncpg
import httpx
import nats
import psutil
import redis.asyncio as redis

from poi_cli import embedded, stack
from poi_cli.demo import demo_points
from poi_notify.events import POINTS_CONSUMER, POINTS_WEBHOOKS_CONSUMER, STATUS_CONSUMER
from poi_registry.points.models import PointCreate
from poi_shared.auth import issue_token
from poi_shared.contracts import POINT_REGISTERED, POINTS, STATUS, STREAMS, PointState, Schedule, ScheduleKind
from poi_shared.envelope import build_message
from poi_shared.jetstream import ensure_streams

ROOT = Path(__file__).resolve().parent.parent
POINT_COUNT = 17_000
SECRET = "bench-secret-not-for-production-0123456789"
READY_BOUND_S = 300.0
NOTIFY_POINTS_CONSUMERS = (POINTS_CONSUMER, POINTS_WEBHOOKS_CONSUMER)
BACKEND_SEPARATOR = "#"


@dataclass
class Pipeline:
    """A running pipeline: where each service listens, its databases, the points, and its processes."""

    infra: stack.Infrastructure
    namespace: str
    database_urls: dict[str, str]
    points: list[PointState]
    urls: dict[str, str] = field(default_factory=dict)
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    logs: Path = Path()

    def token(self, *roles: str, katotth: list[str] | None = None) -> str:
        """A bearer token the services accept."""
        return issue_token(SECRET, subject="bench", roles=list(roles), katotth=katotth, ttl_s=3600)

    def cpu_seconds(self) -> dict[str, float]:
        """CPU seconds used so far by each service process (with its children) and by each server."""
        used = {name: _tree_cpu(proc.pid) for name, proc in self.processes.items()}
        for server in self.infra.started:
            used[server.name] = _tree_cpu(server.process.pid)
        if not any(server.name == "postgres" for server in self.infra.started):
            used.update(_backends_cpu(self.database_urls))
        return used


def _backends_cpu(database_urls: dict[str, str]) -> dict[str, float]:
    """CPU seconds of each of a running PostgreSQL's backends serving these databases, when the server runs on this
    machine (its backends name their database in their title); the server is shared, so only these are ours."""
    names = {url.rsplit("/", 1)[-1].split("?")[0]: service for service, url in database_urls.items()}
    used: dict[str, float] = {}
    for process in psutil.process_iter(["cmdline"]):
        title = " ".join(process.info["cmdline"] or [])
        if not title.startswith("postgres: "):
            continue
        words = title.split()
        database = next((w for w in words if w in names), None)
        if database is None:
            continue
        try:
            times = process.cpu_times()
        except psutil.Error:
            continue
        # Per backend: one that exits between two readings must not count as negative time.
        used[f"postgres:{names[database]}{BACKEND_SEPARATOR}{process.pid}"] = times.user + times.system
    return used


def cpu_cores(before: dict[str, float], after: dict[str, float], seconds: float) -> dict[str, float]:
    """CPU cores busy between two readings of cpu_seconds, per process name (backends added up per database)."""
    cores: dict[str, float] = {}
    for key, used in after.items():
        name = key.split(BACKEND_SEPARATOR)[0]
        cores[name] = cores.get(name, 0.0) + (used - before.get(key, 0.0)) / seconds
    return cores


def _tree_cpu(pid: int) -> float:
    """User and system CPU seconds of a process and its children."""
    try:
        parent = psutil.Process(pid)
        processes = [parent, *parent.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0.0
    total = 0.0
    for process in processes:
        try:
            times = process.cpu_times()
            total += times.user + times.system
        except psutil.NoSuchProcess:
            pass
    return total


def bench_points(
    count: int = POINT_COUNT, *, on_blackout: frozenset[str] = frozenset(), seed: int = 11
) -> list[PointState]:
    """Demo points over real settlements as the registry would publish them; those in on_blackout oblasts
    (KATOTTH prefixes) open only when a coordinator activates their area."""
    now = datetime.now(UTC)
    points = []
    for n, raw in enumerate(demo_points(count, seed=seed)):
        fields = PointCreate.model_validate(raw).model_dump(exclude={"contact_phone", "schedule"})
        kind = ScheduleKind.on_blackout if str(raw["katotth"])[:4] in on_blackout else ScheduleKind.always
        points.append(
            PointState(
                id=uuid4(),
                code=f"B-{n:06d}",
                version=1,
                updated_at=now,
                retired=False,
                schedule=Schedule(kind=kind),
                **fields,
            )
        )
    return points


@contextmanager
def running_pipeline(
    points: list[PointState], *, status_workers: int = 1, extra_env: dict[str, str] | None = None
) -> Iterator[Pipeline]:
    """Start everything, publish the points, wait until status and search hold them all; stop it all after."""
    with ExitStack() as stack_, _temporary_dir() as tmp:
        infra = stack.start_infrastructure(
            tmp,
            database_url=os.environ.get("POI_DATABASE_URL"),
            nats_url=os.environ.get("POI_NATS_URL"),
            redis_url=os.environ.get("POI_REDIS_URL"),
            ports={name: embedded.free_port() for name in stack.EMBEDDED_PORTS},
            durable=False,
        )
        stack_.callback(infra.stop)
        namespace = f"b{secrets.token_hex(4)}"
        stack_.callback(lambda: asyncio.run(_drop_namespace(infra, namespace)))
        database_urls = asyncio.run(stack.prepare_databases(infra.database_url, namespace))
        pipeline = Pipeline(infra, namespace, database_urls, points, logs=tmp / "logs")
        stack_.callback(stack.stop_services, pipeline.processes)
        asyncio.run(_publish_points(infra.nats_url, namespace, points))
        _start_services(pipeline, status_workers, extra_env or {})
        asyncio.run(_wait_known(pipeline))
        yield pipeline


async def _drop_namespace(infra: stack.Infrastructure, namespace: str) -> None:
    """Remove the namespace's databases, streams and Redis keys."""
    conn = await asyncpg.connect(infra.database_url)
    try:
        for row in await conn.fetch("SELECT datname FROM pg_database WHERE datname LIKE $1", f"{namespace}\\_%"):
            await conn.execute(f'DROP DATABASE IF EXISTS "{row["datname"]}" WITH (FORCE)')
    finally:
        await conn.close()
    nc = await nats.connect(infra.nats_url)
    try:
        for spec in STREAMS:
            try:
                await nc.jetstream().delete_stream(spec.stream_name(namespace))
            except nats.js.errors.NotFoundError:
                pass
    finally:
        await nc.close()
    cache = redis.Redis.from_url(infra.redis_url)
    try:
        async for key in cache.scan_iter(f"{namespace}:*", count=1000):
            await cache.delete(key)
    finally:
        await cache.aclose()


@contextmanager
def _temporary_dir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="bench-status-") as tmp:
        yield Path(tmp)


async def _publish_points(nats_url: str, namespace: str, points: list[PointState]) -> None:
    """Publish every point's registered event, as the registry's relay does, many at a time."""
    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()
        await ensure_streams(js, namespace)
        messages = [
            build_message(namespace=namespace, event_type=POINT_REGISTERED, key=str(p.id), data=p, source="/bench")
            for p in points
        ]
        for start in range(0, len(messages), 1000):
            chunk = messages[start : start + 1000]
            await asyncio.gather(*(js.publish(m.subject, m.body, headers=m.headers) for m in chunk))
    finally:
        await nc.close()


def _start_services(pipeline: Pipeline, status_workers: int, extra_env: dict[str, str]) -> None:
    """Status (without its relay), the relay on its own, search and notify, each a process of its own."""
    pipeline.logs.mkdir(parents=True, exist_ok=True)
    env = {
        service: {
            **stack.service_env(
                service, pipeline.infra, pipeline.database_urls, namespace=pipeline.namespace, secret=SECRET
            ),
            "POI_STATUS_RELAY_IN_PROCESS": "false",
            "OTEL_TRACES_EXPORTER": "none",
            **{f"POI_{service.upper()}_LOG_LEVEL": "WARNING"},
            **extra_env,
        }
        for service in ("status", "search", "notify")
    }
    ports = {service: embedded.free_port() for service in ("status", "search", "notify")}
    for service in ("search", "notify"):
        pipeline.processes[service] = stack.start_service(
            service, ports[service], env[service], pipeline.logs / f"{service}.log"
        )
    argv = [sys.executable, "-m", "uvicorn", "poi_status.app:create_app", "--factory", "--host", "127.0.0.1"]
    argv += ["--port", str(ports["status"]), "--no-access-log", "--log-level", "warning"]
    argv += ["--workers", str(status_workers)] if status_workers > 1 else []
    with (pipeline.logs / "status.log").open("ab") as out:
        pipeline.processes["status"] = subprocess.Popen(argv, env=env["status"], stdout=out, stderr=subprocess.STDOUT)
    with (pipeline.logs / "relay.log").open("ab") as out:
        pipeline.processes["relay"] = subprocess.Popen(
            [sys.executable, "-m", "poi_status", "relay"], env=env["status"], stdout=out, stderr=subprocess.STDOUT
        )
    pipeline.urls = {service: f"http://127.0.0.1:{port}" for service, port in ports.items()}
    try:
        stack.wait_ready(ports, {s: pipeline.processes[s] for s in ports}, timeout_s=READY_BOUND_S)
    except (TimeoutError, RuntimeError) as exc:
        raise RuntimeError(f"{exc}\n{tail_logs(pipeline)}") from exc


def tail_logs(pipeline: Pipeline) -> str:
    """The end of every service's log."""
    return "\n".join(f"--- {p.name}\n{p.read_text()[-2000:]}" for p in sorted(pipeline.logs.glob("*.log")))


async def _wait_known(pipeline: Pipeline) -> None:
    """Until status knows every point, search holds every point and notify has handled every point's registration
    (its point consumers catching up on 17,000 events would otherwise take CPU from the reports measured)."""
    deadline = time.monotonic() + READY_BOUND_S
    conn = await asyncpg.connect(pipeline.database_urls["status"])
    nc = await nats.connect(pipeline.infra.nats_url)
    try:
        js = nc.jetstream()
        async with httpx.AsyncClient(timeout=5) as client:
            while True:
                known = await conn.fetchval("SELECT count(*) FROM known_points")
                in_search = await search_points(client, pipeline)
                notify_behind = 0
                for durable in NOTIFY_POINTS_CONSUMERS:
                    info = await js.consumer_info(POINTS.stream_name(pipeline.namespace), durable)
                    notify_behind += (info.num_pending or 0) + (info.num_ack_pending or 0)
                if known >= len(pipeline.points) and in_search >= len(pipeline.points) and not notify_behind:
                    return
                if time.monotonic() > deadline:
                    raise TimeoutError(
                        f"status knows {known}, search {in_search} of {len(pipeline.points)} points; "
                        f"notify has {notify_behind} point events to handle"
                    )
                await asyncio.sleep(0.5)
    finally:
        await conn.close()
        await nc.close()


async def search_points(client: httpx.AsyncClient, pipeline: Pipeline) -> int:
    """How many points search holds, from its metrics."""
    text = (await client.get(f"{pipeline.urls['search']}/metrics")).text
    for line in text.splitlines():
        if line.startswith("poi_search_points "):
            return int(float(line.split()[1]))
    return 0


async def drained(pipeline: Pipeline, *, bound_s: float = READY_BOUND_S) -> None:
    """Until status's outbox is empty and notify has handled every status event."""
    deadline = time.monotonic() + bound_s
    conn = await asyncpg.connect(pipeline.database_urls["status"])
    nc = await nats.connect(pipeline.infra.nats_url)
    try:
        js = nc.jetstream()
        while True:
            pending = await conn.fetchval("SELECT count(*) FROM outbox")
            info = await js.consumer_info(STATUS.stream_name(pipeline.namespace), STATUS_CONSUMER)
            if pending == 0 and not info.num_pending and not info.num_ack_pending:
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"outbox {pending}, notify pending {info.num_pending}/{info.num_ack_pending}")
            await asyncio.sleep(0.5)
    finally:
        await conn.close()
        await nc.close()


async def status_stream_messages(pipeline: Pipeline) -> collections.Counter[str]:
    """How many messages the STATUS stream holds per event type."""
    nc = await nats.connect(pipeline.infra.nats_url)
    counts: collections.Counter[str] = collections.Counter()
    try:
        js = nc.jetstream()
        sub = await js.pull_subscribe(
            STATUS.wildcard(pipeline.namespace), stream=STATUS.stream_name(pipeline.namespace)
        )
        while True:
            try:
                msgs = await sub.fetch(1000, timeout=1.0)
            except (TimeoutError, nats.errors.TimeoutError):
                return counts
            for msg in msgs:
                counts[(msg.headers or {}).get("ce-type", "?")] += 1
                await msg.ack()
    finally:
        await nc.close()


def percentile(values: list[float], q: float) -> float:
    """The q-quantile of values (0 when empty)."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]
