"""Search nearest at spike load against (a) the same server's empty endpoint and (b) PostGIS behind it.

What it needs: NATS with JetStream and Redis (POI_NATS_URL, POI_REDIS_URL, else embedded ones are started), and
for (b) a PostgreSQL with PostGIS (POI_DATABASE_URL; Debian: `apt install postgresql-15-postgis-3`): the bench
creates a database of its own there and `CREATE EXTENSION postgis` in it. Without PostGIS (b) is skipped, saying so.

It publishes 17,000 demo points with a status each to its own streams, starts one search replica as a process
(the real app: it reads the streams, rate limits with limits set high), measures the cold start to ready and the
resident memory, then loads /empty, nearest and PostGIS nearest with 64 connections (wrk, else a Python load
generator in a separate process) while status reports are published, and prints ratios, p99 and the
report-to-visible latency of those reports as the replica measured it.
"""

import asyncio
import json
import multiprocessing
import os
import random
import re
import resource
import secrets
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit
from uuid import uuid4

import asyncpg
import httpx
import nats
import psutil
from rich.console import Console
from rich.table import Table

from bench.search_app import POSTGIS_ENV
from poi_cli.demo import demo_points
from poi_cli.embedded import free_port
from poi_cli.stack import EMBEDDED_PORTS, Infrastructure, start_infrastructure
from poi_registry.points.models import PointCreate
from poi_search.catalog.readmodel import ReadModel
from poi_search.data import keys_bucket
from poi_shared import db, jetstream
from poi_shared.contracts import POINT_REGISTERED, STATUS_CHANGED, STREAMS, OpenState, PointState, StatusState
from poi_shared.envelope import OutgoingMessage, build_message

ROOT = Path(__file__).resolve().parent.parent
POINT_COUNT = 17_000
OPEN_SHARE = 0.7
CONNECTIONS = 64
MAX_REQUESTS = 1_000_000  # per run, beside the time bound
QUERY = "limit=10&radius_km=50&open_now=true&service=heat&service=charging"
REPORTS_PER_S = 100  # status reports published while nearest is loaded
TARGET_RATIO, TARGET_POSTGIS, TARGET_P99_MS, TARGET_COLD_S, TARGET_RSS_MB = 0.6, 3.0, 20.0, 3.0, 200.0
PATHS = {
    "empty": "/empty",
    "nearest": "/v1/search/nearest",
    "postgis": "/bench/postgis/nearest",
}
WRK_SCRIPT = """
local path, cap, done = "/empty", 0, 0
function init(args)
  path, cap = args[1], tonumber(args[2])
  math.randomseed(os.time() + math.floor(os.clock() * 1000000))
end
function request()
  if path == "/empty" then return wrk.format("GET", path) end
  local lat, lon = 46 + 6 * math.random(), 23 + 17 * math.random()
  return wrk.format("GET", string.format("%s?lat=%.5f&lon=%.5f&QUERY", path, lat, lon))
end
function response(status, headers, body)
  done = done + 1
  if done >= cap then wrk.thread:stop() end
end
""".replace("QUERY", QUERY)
VISIBLE_BUCKETS = re.compile(r'^poi_search_event_visible_seconds_bucket\{le="([^"]+)",stream="status"\} (\S+)$', re.M)


@dataclass
class Result:
    """One measured run."""

    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    errors: int
    client_cpu: float  # cores used by the load generator
    server_cpu: float = 0.0  # cores used by the server
    database_cpu: float | None = None  # cores used by the PostgreSQL backends serving the server (PostGIS only)


def demo_events(namespace: str, count: int = POINT_COUNT, seed: int = 7) -> list[tuple[PointState, StatusState]]:
    """Demo points with a status each: ~70% open, the rest closed or unknown."""
    rng, now = random.Random(seed), datetime.now(UTC)
    events = []
    for n, raw in enumerate(demo_points(count, seed=seed)):
        fields = PointCreate.model_validate(raw).model_dump(exclude={"contact_phone"})
        point = PointState(id=uuid4(), code=f"B-{n:06d}", version=1, updated_at=now, retired=False, **fields)
        state = OpenState.open if rng.random() < OPEN_SHARE else rng.choice((OpenState.closed, OpenState.unknown))
        status = StatusState(point_id=point.id, version=1, state=state, reported_at=now, reported_by="bench")
        events.append((point, status))
    return events


def messages(namespace: str, events: list[tuple[PointState, StatusState]]) -> list[OutgoingMessage]:
    """The point and status events as the registry and status services publish them."""
    out = []
    for point, status in events:
        for event_type, data in ((POINT_REGISTERED, point), (STATUS_CHANGED, status)):
            out.append(
                build_message(namespace=namespace, event_type=event_type, key=str(point.id), data=data, source="bench")
            )
    return out


def _path(kind: str, rng: random.Random) -> str:
    """A request path: /empty, or a nearest query at a random spot over Ukraine."""
    if kind == "empty":
        return PATHS[kind]
    return f"{PATHS[kind]}?lat={rng.uniform(46, 52):.5f}&lon={rng.uniform(23, 40):.5f}&{QUERY}"


def python_load(base: str, kind: str, seconds: float, cpus: set[int]) -> Result:
    """Load generator for a separate process: CONNECTIONS keep-alive clients until the time or count is up."""
    if cpus:
        os.sched_setaffinity(0, cpus)
    return asyncio.run(_drive(base, kind, seconds))


async def _drive(base: str, kind: str, seconds: float) -> Result:
    """Run the clients, one httpx client per connection (a shared pool costs O(connections) per request)."""
    latencies: list[float] = []
    errors = 0
    rng, tls = random.Random(), ssl.create_default_context()  # one TLS context: each client would load the CAs
    clients = [httpx.AsyncClient(base_url=base, verify=tls, timeout=10.0) for _ in range(CONNECTIONS)]
    start, cpu = time.perf_counter(), time.process_time()
    deadline = start + seconds

    async def client_loop(client: httpx.AsyncClient) -> None:
        nonlocal errors
        async with client:
            while time.perf_counter() < deadline and len(latencies) + errors < MAX_REQUESTS:
                sent = time.perf_counter()
                try:
                    ok = (await client.get(_path(kind, rng))).status_code == 200
                except httpx.HTTPError:
                    ok = False
                if ok:
                    latencies.append(time.perf_counter() - sent)
                else:
                    errors += 1

    await asyncio.gather(*(client_loop(c) for c in clients))
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
    latencies.sort()
    pct = (lambda q: latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000) if latencies else (lambda q: 0)
    return Result(len(latencies) / elapsed, pct(0.5), pct(0.99), len(latencies) + errors, errors, cpu / elapsed)


def _wrk_load(wrk: str, script: Path, base: str, kind: str, seconds: float, cpus: set[int]) -> Result:
    """Run wrk with the Lua script and parse its summary."""
    cmd = [wrk, "-t1", f"-c{CONNECTIONS}", f"-d{max(1, round(seconds))}s", "--latency", "--timeout", "10s"]
    cmd += ["-s", str(script), base, "--", PATHS[kind], str(MAX_REQUESTS)]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    out = subprocess.run(
        cmd, capture_output=True, text=True, timeout=seconds + 60, check=True, preexec_fn=_pin(cpus)
    ).stdout
    elapsed, after = time.perf_counter() - start, resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime) / elapsed
    unit = {"us": 0.001, "ms": 1.0, "s": 1000.0}
    pct = {p: float(v) * unit[u] for p, v, u in re.findall(r"^\s+(\d+)%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)}
    errors = sum(int(n) for n in re.findall(r"(?:Non-2xx or 3xx responses:|connect|read|write|timeout) (\d+)", out))
    requests = int(m.group(1)) if (m := re.search(r"(\d+) requests in", out)) else 0
    rps = float(m.group(1)) if (m := re.search(r"Requests/sec:\s+([\d.]+)", out)) else 0.0
    return Result(rps, pct.get("50", 0.0), pct.get("99", 0.0), requests, errors, cpu)


def _pin(cpus: set[int]) -> Callable[[], None] | None:
    """A preexec_fn pinning the child to cpus (or None)."""
    return (lambda: os.sched_setaffinity(0, cpus)) if cpus else None


def _free_port() -> int:
    """A free loopback port."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def publish(nats_url: str, namespace: str, events: list[tuple[PointState, StatusState]]) -> float:
    """Publish every point and status event to fresh streams of the namespace; returns the seconds it took."""
    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()
        await jetstream.ensure_streams(js, namespace)
        start = time.perf_counter()
        batch = []
        for message in messages(namespace, events):
            batch.append(await js.publish_async(message.subject, message.body, headers=message.headers))
            if len(batch) >= 1000:
                await asyncio.gather(*batch)
                batch = []
        await asyncio.gather(*batch)
        return time.perf_counter() - start
    finally:
        await nc.close()


async def drop(nats_url: str, namespace: str) -> None:
    """Remove the bench's streams and bucket."""
    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()
        for name in [spec.stream_name(namespace) for spec in STREAMS] + [f"KV_{keys_bucket(namespace)}"]:
            try:
                await js.delete_stream(name)
            except nats.js.errors.NotFoundError:
                pass
    finally:
        await nc.close()


def database_cpu_s(database: str) -> dict[int, float]:
    """CPU seconds so far of each PostgreSQL backend connected to the database (found by its process title)."""
    found = {}
    for proc in psutil.process_iter(["cmdline"]):
        try:
            title = " ".join(proc.info["cmdline"] or [])
            if title.startswith("postgres: ") and f" {database} " in title:
                found[proc.pid] = sum(proc.cpu_times()[:2])
        except psutil.Error:
            continue
    return found


async def prepare_postgis(server_url: str, namespace: str, events: list[tuple[PointState, StatusState]]) -> str | None:
    """A database of the bench's own with PostGIS and the same points; None (and why) where PostGIS is missing."""
    conn = await asyncpg.connect(server_url)
    try:
        if not await conn.fetchval("SELECT count(*) FROM pg_available_extensions WHERE name = 'postgis'"):
            return None
    finally:
        await conn.close()
    name = f"{namespace}_postgis"
    await db.ensure_database(server_url, name)
    url = db.database_url(server_url, name)
    model = ReadModel()
    for seq, (point, status) in enumerate(events, start=1):
        model.apply_point(point, seq)
        model.apply_status(status, seq)
    rows = []
    for point, status in events:
        slot = model.slot_of(str(point.id))
        assert slot is not None
        record = model.records[slot]
        if record.point is None:
            continue
        item = json.loads(record.item(b"null", b""))
        services = [s.value for s in point.services]
        geog = f"SRID=4326;POINT({record.point.lon} {record.point.lat})"
        rows.append((point.id, geog, status.state.value, status.reported_at, services, json.dumps(item)))
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("CREATE EXTENSION IF NOT EXISTS postgis")
        await conn.execute(
            "CREATE TABLE bench_points (id uuid PRIMARY KEY, geog geography(Point, 4326) NOT NULL, state text NOT NULL,"
            " reported_at timestamptz NOT NULL, services text[] NOT NULL, item jsonb NOT NULL)"
        )
        await conn.executemany("INSERT INTO bench_points VALUES ($1, ST_GeogFromText($2), $3, $4, $5, $6::jsonb)", rows)
        await conn.execute("CREATE INDEX ON bench_points USING gist (geog)")
        await conn.execute("ANALYZE bench_points")
    finally:
        await conn.close()
    return url


async def drop_postgis(server_url: str, namespace: str) -> None:
    """Remove the bench's PostGIS database."""
    conn = await asyncpg.connect(server_url)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{namespace}_postgis" WITH (FORCE)')
    finally:
        await conn.close()


def report_statuses(
    nats_url: str, namespace: str, events: list[tuple[PointState, StatusState]], stop: threading.Event
) -> int:
    """Publish REPORTS_PER_S status reports (new versions of random points' statuses) until stopped."""

    async def go() -> int:
        nc = await nats.connect(nats_url)
        js, rng, sent = nc.jetstream(), random.Random(3), 0
        versions: dict[str, int] = {}
        try:
            while not stop.is_set():
                tick = time.perf_counter()
                for _ in range(max(1, REPORTS_PER_S // 10)):
                    point, _ = rng.choice(events)
                    version = versions[str(point.id)] = versions.get(str(point.id), 1) + 1
                    status = StatusState(
                        point_id=point.id,
                        version=version,
                        state=rng.choice((OpenState.open, OpenState.closed)),
                        reported_at=datetime.now(UTC),
                        reported_by="bench",
                    )
                    msg = build_message(
                        namespace=namespace, event_type=STATUS_CHANGED, key=str(point.id), data=status, source="bench"
                    )
                    await js.publish(msg.subject, msg.body, headers=msg.headers)
                    sent += 1
                await asyncio.sleep(max(0.0, 0.1 - (time.perf_counter() - tick)))
        finally:
            await nc.close()
        return sent

    return asyncio.run(go())


def visible_latency(metrics_text: str) -> tuple[float | None, float | None, int]:
    """(p50, p99) upper bounds in ms of the report-to-visible histogram, and how many reports it holds."""
    buckets = [(float(le), float(n)) for le, n in VISIBLE_BUCKETS.findall(metrics_text)]
    total = buckets[-1][1] if buckets else 0.0

    def bound(q: float) -> float | None:
        for le, n in buckets:
            if total and n >= q * total:
                return le * 1000
        return None

    return bound(0.5), bound(0.99), int(total)


def _wait_idle(server: psutil.Process, limit_s: float = 60.0) -> None:
    """Wait (at most limit_s) until the server has worked off requests left in flight by the previous run."""
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        if server.cpu_percent(interval=0.25) < 10:
            return


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM the server (uvicorn shuts down gracefully), SIGKILL if it lingers."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=15)


def _wait_caught_up(proc: subprocess.Popen[bytes], base: str, log: Path) -> dict[str, float]:
    """Poll /bench/info until the replica has caught up (at most 120 s); its timings."""
    deadline = time.monotonic() + 120
    with httpx.Client(timeout=1.0) as client:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"server exited with {proc.returncode}:\n{log.read_text()[-2000:]}")
            try:
                info = client.get(f"{base}/bench/info").json()
                if info["caught_up_s"] is not None:
                    return info
            except httpx.HTTPError:
                pass
            time.sleep(0.02)
    raise RuntimeError(f"server not ready in 120 s:\n{log.read_text()[-2000:]}")


def main() -> None:
    """Publish, start a replica, load the three endpoints, print the comparison with the targets."""
    seconds = float(os.environ.get("BENCH_SECONDS", "10"))
    warmup = min(2.0, max(1.0, seconds / 5))
    wrk = shutil.which("wrk") if os.environ.get("BENCH_LOADGEN", "auto") != "python" else None
    cores = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    server_cpus, client_cpus = ({cores[0]}, set(cores[1:])) if len(cores) >= 2 else (set(), set())
    console = Console()
    namespace = f"bench{secrets.token_hex(3)}"
    with tempfile.TemporaryDirectory(prefix="bench-search-") as tmp:
        ports = {name: free_port() for name in EMBEDDED_PORTS}
        infra = start_infrastructure(
            Path(tmp),
            database_url=os.environ.get("POI_DATABASE_URL"),
            nats_url=os.environ.get("POI_NATS_URL"),
            redis_url=os.environ.get("POI_REDIS_URL"),
            ports=ports,
            durable=False,
        )
        events = demo_events(namespace)
        postgis_url: str | None = None
        try:
            publish_s = asyncio.run(publish(infra.nats_url, namespace, events))
            postgis_url = asyncio.run(prepare_postgis(infra.database_url, namespace, events))
            results, cold, rss_mb, rss_after_mb, reports = _serve_and_load(
                infra, namespace, events, postgis_url, seconds, warmup, wrk, server_cpus, client_cpus, Path(tmp)
            )
        finally:
            asyncio.run(drop(infra.nats_url, namespace))
            if postgis_url:
                asyncio.run(drop_postgis(infra.database_url, namespace))
            infra.stop()
    _report(console, results, cold, rss_mb, rss_after_mb, reports, publish_s, seconds, wrk, server_cpus, client_cpus)


def _serve_and_load(
    infra: Infrastructure,
    namespace: str,
    events: list[tuple[PointState, StatusState]],
    postgis_url: str | None,
    seconds: float,
    warmup: float,
    wrk: str | None,
    server_cpus: set[int],
    client_cpus: set[int],
    tmp: Path,
) -> tuple[dict[str, Result], dict[str, float], float, float, tuple[float | None, float | None, int, int]]:
    """Start the replica, measure its cold start and memory, then load each endpoint in turn."""
    log, script = tmp / "server.log", tmp / "load.lua"
    script.write_text(WRK_SCRIPT)
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "POI_SEARCH_NATS_URL": infra.nats_url,
        "POI_SEARCH_REDIS_URL": infra.redis_url,
        "POI_SEARCH_NAMESPACE": namespace,
        "POI_SEARCH_RATE_LIMIT_IP": str(10**12),  # high: the limiter runs (and syncs with Redis) but never refuses
        "POI_SEARCH_LOG_LEVEL": "WARNING",
    }
    postgis_db = None
    if postgis_url:
        env[POSTGIS_ENV] = postgis_url
        postgis_db = urlsplit(postgis_url).path.lstrip("/")
    cmd = [sys.executable, "-m", "uvicorn", "bench.search_app:create_app", "--factory", "--no-access-log"]
    cmd += ["--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"]
    results: dict[str, Result] = {}
    with log.open("wb") as out, ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
        try:
            if server_cpus:
                os.sched_setaffinity(proc.pid, server_cpus)
            cold = _wait_caught_up(proc, base, log)
            server = psutil.Process(proc.pid)
            rss_mb = server.memory_info().rss / 1e6
            probe = httpx.get(f"{base}/v1/search/nearest?lat=50.45&lon=30.52&{QUERY}", timeout=10)
            cold["probe_count"] = int(probe.raise_for_status().json()["count"])  # near Kyiv: must find some
            stop_reports = threading.Event()
            sent: list[int] = []
            for kind in ("empty", "nearest", "postgis"):
                if kind == "postgis" and not postgis_url:
                    continue
                for duration in (warmup, seconds):
                    _wait_idle(server)
                    reporter = None
                    if kind == "nearest" and duration == seconds:
                        reporter = threading.Thread(
                            target=lambda: sent.append(report_statuses(infra.nats_url, namespace, events, stop_reports))
                        )
                        reporter.start()
                    cpu = sum(server.cpu_times()[:2])
                    backends = database_cpu_s(postgis_db) if kind == "postgis" and postgis_db else {}
                    start = time.perf_counter()
                    if wrk:
                        result = _wrk_load(wrk, tmp / "load.lua", base, kind, duration, client_cpus)
                    else:
                        result = pool.submit(python_load, base, kind, duration, client_cpus).result(duration + 60)
                    elapsed = time.perf_counter() - start
                    result.server_cpu = (sum(server.cpu_times()[:2]) - cpu) / elapsed
                    if kind == "postgis" and postgis_db:
                        # A backend that started during the run counts whole; none seen means they are not ours to read.
                        used = database_cpu_s(postgis_db)
                        if used:
                            result.database_cpu = sum(t - backends.get(pid, 0.0) for pid, t in used.items()) / elapsed
                    if reporter is not None:
                        stop_reports.set()
                        reporter.join()
                results[kind] = result
            p50, p99, seen = visible_latency(httpx.get(f"{base}/metrics", timeout=10).text)
            rss_after_mb = server.memory_info().rss / 1e6
        finally:
            _stop(proc)
    return results, cold, rss_mb, rss_after_mb, (p50, p99, seen, sum(sent))


def _report(
    console: Console,
    results: dict[str, Result],
    cold: dict[str, float],
    rss_mb: float,
    rss_after_mb: float,
    reports: tuple[float | None, float | None, int, int],
    publish_s: float,
    seconds: float,
    wrk: str | None,
    server_cpus: set[int],
    client_cpus: set[int],
) -> None:
    """Print the measurements, then each target with PASS/FAIL."""
    loadgen = "wrk -t1 (Lua script)" if wrk else "Python asyncio+httpx in a separate process"
    table = Table(title=f"GET over loopback, {CONNECTIONS} connections, {seconds:g} s each after a warm-up")
    for col in ("endpoint", "req/s", "p50 ms", "p99 ms", "requests", "errors", "srv CPU", "cli CPU"):
        table.add_column(col, justify="left" if col == "endpoint" else "right")
    names = {"empty": "(a) /empty", "nearest": "search nearest", "postgis": "(b) PostGIS nearest"}
    for kind, r in results.items():
        cpu = f"{r.server_cpu:.2f}", f"{r.client_cpu:.2f}"
        table.add_row(
            names[kind], f"{r.rps:,.0f}", f"{r.p50_ms:.2f}", f"{r.p99_ms:.2f}", f"{r.requests:,}", str(r.errors), *cpu
        )
    console.print(table)
    nearest = results["nearest"]
    ratio = nearest.rps / results["empty"].rps if results["empty"].rps else 0.0
    postgis = results.get("postgis")
    over_postgis = nearest.rps / postgis.rps if postgis and postgis.rps else None
    p50_visible, p99_visible, seen, sent = reports
    targets = Table(title="targets")
    for col in ("target", "measured", "result"):
        targets.add_column(col)
    checks: list[tuple[str, str, bool | None]] = [
        (f"nearest >= {TARGET_RATIO:.0%} of (a) /empty", f"{ratio:.1%}", ratio >= TARGET_RATIO),
        (
            f"nearest >= {TARGET_POSTGIS:g}x (b) PostGIS",
            f"{over_postgis:.2f}x" if over_postgis is not None else "skipped: no PostGIS (see below)",
            None if over_postgis is None else over_postgis >= TARGET_POSTGIS,
        ),
        (f"nearest p99 < {TARGET_P99_MS:g} ms", f"{nearest.p99_ms:.2f} ms", 0 < nearest.p99_ms < TARGET_P99_MS),
        (
            f"cold start to ready, {POINT_COUNT:,} points from NATS < {TARGET_COLD_S:g} s",
            f"{cold['caught_up_s']:.2f} s (process start to ready: {cold['process_s']:.2f} s)",
            cold["caught_up_s"] < TARGET_COLD_S,
        ),
        (f"replica RSS once ready < {TARGET_RSS_MB:g} MB", f"{rss_mb:.0f} MB", rss_mb < TARGET_RSS_MB),
    ]
    for name, measured, ok in checks:
        verdict = "[yellow]SKIP[/]" if ok is None else "[green]PASS[/]" if ok else "[red]FAIL[/]"
        targets.add_row(name, measured, verdict)
    console.print(targets)
    pinning = (
        f"server on CPU {sorted(server_cpus)}, client on CPU {sorted(client_cpus)}" if server_cpus else "no pinning"
    )
    visible = (
        f"p50 <= {p50_visible:g} ms, p99 <= {p99_visible:g} ms over {seen} of {sent} reports"
        if p99_visible is not None
        else f"not measured ({seen} of {sent} reports seen)"
    )
    per_core = ""
    if postgis and postgis.database_cpu is not None and nearest.server_cpu and postgis.rps:
        # (b) also runs in PostgreSQL's backends, which are not pinned and use the load generator's core too.
        ours = nearest.rps / nearest.server_cpu
        theirs = postgis.rps / (postgis.server_cpu + postgis.database_cpu)
        per_core = (
            f"\nper core busy: nearest {ours:,.0f} req/s on {nearest.server_cpu:.2f} cores; PostGIS {theirs:,.0f} req/s"
            f" on {postgis.server_cpu:.2f} (server) + {postgis.database_cpu:.2f} (its PostgreSQL backends) cores: "
            f"{ours / theirs:.2f}x"
        )
    console.print(
        f"ratio nearest/empty: {ratio:.3f}; nearest/PostGIS: "
        + (f"{over_postgis:.3f}" if over_postgis is not None else "n/a")
        + per_core
        + f"\nquery: random lat 46..52, lon 23..40, {QUERY.replace('&', ' ')}; "
        f"a probe near Kyiv found {int(cold['probe_count'])} points\n"
        f"report to visible under the nearest load ({REPORTS_PER_S} status reports/s published to NATS; the "
        f"replica's histogram from ce-time to applied): {visible}\n"
        f"cold start = the replica's lifespan start to caught up with both streams (34,000 events, published in "
        f"{publish_s:.1f} s); RSS after the load: {rss_after_mb:.0f} MB\n"
        f"load generator: {loadgen}; it shares the machine with the server "
        f"({os.cpu_count()} cores, {pinning}); CPU columns = cores busy during the run\n"
        "search routes are rate limited (limit set high; counts synced with Redis every 0.2 s) and not traced; "
        "/empty and PostGIS are neither"
        + ("" if postgis else "\n(b) skipped: POI_DATABASE_URL names no PostgreSQL with PostGIS available")
    )
    empty = results["empty"]
    if empty.client_cpu >= 0.9 and empty.server_cpu < 0.9:
        console.print(
            f"[yellow]note: /empty was client-bound (client {empty.client_cpu:.2f} cores, server "
            f"{empty.server_cpu:.2f}): the baseline is low, the ratio flatters nearest; install wrk for a fair one[/]"
        )
