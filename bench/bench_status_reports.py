"""Status reports through the HTTP API against 17,000 points, with the whole pipeline running as processes.

status (API, its relay as a process of its own), NATS, search and notify: wrk sends reports that each change a
point's occupancy, for BENCH_SECONDS, over BENCH_CONNECTIONS connections. Meanwhile a probe reports on points of
its own every PROBE_INTERVAL_S and times each report until it is visible. Afterwards every report must be
committed once, published once (counted in the stream) and recorded once by notify. A baseline makes the same
statements directly with asyncpg, at the same concurrency, on a database of its own: a report per read and per
write (a commit each), where status writes the reports arriving together in one batch, so the API may beat it.

Visible: in search's answers when search answers a nearest query in under SEARCH_FAST_MS (then the probe polls
it); otherwise (a search that scans every point per query would be flooded by the polling) at search's input, an
ordered consumer on the status stream like search's own, and the table says which.

Settings: BENCH_SECONDS (20), BENCH_CONNECTIONS (32), BENCH_STATUS_WORKERS (1); POI_DATABASE_URL, POI_NATS_URL and
POI_REDIS_URL to use running servers (else embedded ones). Needs wrk.
"""

import asyncio
import json
import os
import re
import shutil
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import httpx
import nats
from nats.aio.msg import Msg
from rich.console import Console
from rich.table import Table

from bench.status_pipeline import (
    POINT_COUNT,
    Pipeline,
    bench_points,
    cpu_cores,
    drained,
    percentile,
    running_pipeline,
    status_stream_messages,
    tail_logs,
)
from poi_shared import db
from poi_shared.contracts import STATUS, STATUS_CHANGED, PointState, Visibility
from poi_shared.envelope import OutgoingMessage
from poi_status import data
from poi_status.app import MIGRATIONS

TARGET_RATE, TARGET_VISIBLE_P99_MS = 1000.0, 1000.0
PROBE_POINTS = 50
PROBE_INTERVAL_S = 0.2
WARMUP_POINTS = 1000
WARMUP_S = 3
SEARCH_FAST_MS = 10.0
WRK_SCRIPT = r"""
local points, n, counter, token, run = {}, 0, 0, "", ""
function init(args)
  token, run = args[1], args[3]
  for line in io.lines(args[2]) do n = n + 1; points[n] = line end
end
function request()
  local i, round = counter % n, math.floor(counter / n)
  counter = counter + 1
  -- Every report changes the point's occupancy, so every report is published.
  local body = '{"state":"open","occupancy":1}'
  if round > 0 then body = string.format('{"occupancy":%d}', 1 + round % 2) end
  local headers = {["Authorization"] = "Bearer " .. token, ["Content-Type"] = "application/json",
                   ["Idempotency-Key"] = run .. "-" .. counter}
  return wrk.format("POST", "/v1/points/" .. points[i + 1] .. "/status", headers, body)
end
"""


@dataclass
class Load:
    """What wrk measured."""

    rps: float
    p50_ms: float
    p99_ms: float
    completed: int
    errors: int
    error_lines: str = ""  # wrk's own words for them (socket errors, non-2xx answers)


@dataclass
class Probes:
    """Report-to-visible times of the probe's reports."""

    where: str
    visible_ms: list[float] = field(default_factory=list)
    reported: int = 0
    lost: int = 0


async def run_wrk(
    wrk: str, script: Path, points_file: Path, base: str, token: str, seconds: int, connections: int
) -> Load:
    """wrk against status for the given time; its summary parsed."""
    cmd = [wrk, "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", "--timeout", "10s", "-s", str(script), base]
    cmd += ["--", token, str(points_file), uuid.uuid4().hex[:8]]
    proc = await asyncio.create_subprocess_exec(*cmd, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    stdout, stderr = await proc.communicate()
    out = stdout.decode()
    if proc.returncode:
        raise RuntimeError(f"wrk failed: {stderr.decode()}")
    unit = {"us": 0.001, "ms": 1.0, "s": 1000.0}
    pct = {p: float(v) * unit[u] for p, v, u in re.findall(r"^\s+(\d+)%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)}
    errors = sum(int(n) for n in re.findall(r"(?:Non-2xx or 3xx responses:|connect|read|write|timeout) (\d+)", out))
    completed = int(m.group(1)) if (m := re.search(r"(\d+) requests in", out)) else 0
    rps = float(m.group(1)) if (m := re.search(r"Requests/sec:\s+([\d.]+)", out)) else 0.0
    error_lines = "; ".join(line.strip() for line in out.splitlines() if "errors:" in line or "Non-2xx" in line)
    return Load(rps, pct.get("50", 0.0), pct.get("99", 0.0), completed, errors, error_lines)


async def probe(pipeline: Pipeline, points: list[PointState], *, stop: asyncio.Event, poll_search: bool) -> Probes:
    """Report on the probe points in turn and time each report until it is visible."""
    result = Probes("search's answers" if poll_search else "search's input (an ordered consumer on the stream)")
    seen: dict[tuple[str, int], float] = {}
    waiters: dict[tuple[str, int], asyncio.Event] = {}
    probe_ids = {str(p.id) for p in points}
    nc = await nats.connect(pipeline.infra.nats_url)
    js = nc.jetstream()
    prefix = STATUS.subject(pipeline.namespace, "")

    async def on_status(msg: Msg) -> None:
        point_id = msg.subject.removeprefix(prefix)
        if point_id in probe_ids and (msg.headers or {}).get("ce-type") == STATUS_CHANGED.type:
            key = (point_id, json.loads(msg.data)["version"])
            seen[key] = time.perf_counter()
            if key in waiters:
                waiters[key].set()

    sub = await js.subscribe(
        STATUS.wildcard(pipeline.namespace),
        stream=STATUS.stream_name(pipeline.namespace),
        cb=on_status,
        ordered_consumer=True,
        deliver_policy=nats.js.api.DeliverPolicy.NEW,
    )
    headers = {"Authorization": f"Bearer {pipeline.token('admin')}"}
    async with httpx.AsyncClient(timeout=10) as client:
        n = 0
        while not stop.is_set():
            point = points[n % len(points)]
            body = {"state": "open", "occupancy": 1} if n < len(points) else {"occupancy": 1 + (n // len(points)) % 2}
            n += 1
            sent = time.perf_counter()
            response = await client.post(
                f"{pipeline.urls['status']}/v1/points/{point.id}/status", json=body, headers=headers
            )
            if response.status_code != 201:
                result.lost += 1
                continue
            result.reported += 1
            version, reported_at = response.json()["version"], datetime.fromisoformat(response.json()["reported_at"])
            key = (str(point.id), version)
            if poll_search:
                visible = await _visible_in_search(client, pipeline, point, reported_at)
            else:
                waiters[key] = asyncio.Event()
                if key not in seen:
                    try:
                        await asyncio.wait_for(waiters[key].wait(), 30)
                    except TimeoutError:
                        pass
                visible = seen.get(key)
            if visible is None:
                result.lost += 1
            else:
                result.visible_ms.append((visible - sent) * 1000)
            await asyncio.sleep(max(0.0, PROBE_INTERVAL_S - (time.perf_counter() - sent)))
    await sub.unsubscribe()
    await nc.close()
    return result


async def _visible_in_search(
    client: httpx.AsyncClient, pipeline: Pipeline, point: PointState, reported_at: datetime
) -> float | None:
    """When search first answers with the point's status as reported (polled every 5 ms, 30 s at most)."""
    deadline = time.perf_counter() + 30
    params = {"lat": point.lat, "lon": point.lon, "limit": 5, "radius_km": 0.1}
    while time.perf_counter() < deadline:
        items = (await client.get(f"{pipeline.urls['search']}/v1/search/nearest", params=params)).json()["items"]
        hit = next((i for i in items if i["id"] == str(point.id)), None)
        shown = hit and hit["status"].get("reported_at")
        if shown and datetime.fromisoformat(shown) >= reported_at:
            return time.perf_counter()
        await asyncio.sleep(0.005)
    return None


async def search_query_ms(pipeline: Pipeline, point: PointState) -> float:
    """How long search takes to answer a nearest query now (best of five)."""
    params = {"lat": point.lat, "lon": point.lon, "limit": 5, "radius_km": 0.1}
    best = float("inf")
    async with httpx.AsyncClient(timeout=30) as client:
        for _ in range(5):
            start = time.perf_counter()
            (await client.get(f"{pipeline.urls['search']}/v1/search/nearest", params=params)).raise_for_status()
            best = min(best, (time.perf_counter() - start) * 1000)
    return best


async def baseline(infra_url: str, namespace: str, points: list[PointState], seconds: float, connections: int) -> Load:
    """A report's two statements (its read, and its write of status, history, key and event: status's batch
    statements with a batch of one), made directly with asyncpg on a database of their own, at the same
    concurrency."""
    name = f"{namespace}_baseline"
    await db.ensure_database(infra_url, name)
    url = db.database_url(infra_url, name)
    await db.migrate(url, MIGRATIONS)
    pool = await db.create_pool(url, timeout_s=30, max_size=10)
    try:
        async with pool.acquire() as conn:
            await conn.copy_records_to_table(
                "known_points",
                columns=["id", "version", "katotth", "capacity", "services"],
                records=[(p.id, 1, p.katotth, p.capacity, [s.value for s in p.services]) for p in points],
            )
            await conn.execute(
                "INSERT INTO point_status (point_id, version, state) SELECT id, 0, 'unknown' FROM known_points"
            )
        latencies: list[float] = []
        counter = 0
        deadline = time.perf_counter() + seconds
        started = time.perf_counter()

        async def worker() -> None:
            nonlocal counter
            while time.perf_counter() < deadline:
                n = counter
                counter += 1
                point = points[n % len(points)]
                sent = time.perf_counter()
                async with db.connection(pool) as conn:
                    (current,) = await data.read_for_reports(conn, [(point.id, "bench", str(n))])
                    now = datetime.now(UTC)
                    values = {k: current[k] for k in ("power", "fuel_hours", "internet", "note", "low_fuel")}
                    values.update(
                        point_id=point.id,
                        read_version=current["version"],
                        state="open",
                        previous_state=current["state"],
                        cause="report",
                        services=current["services"],
                        occupancy=1 + (n // len(points)) % 2,
                        capacity=current["point_capacity"],
                        reported_by="bench",
                        reported_at=now,
                        changed_at=now,
                        published=True,
                        served=0,
                        katotth=point.katotth,
                        caller="bench",
                        key=str(n),
                        request_hash=b"h",
                    )
                    event_id = str(uuid.uuid4())
                    message = OutgoingMessage(event_id, f"b.status.{point.id}", {"ce-id": event_id}, b"{}")
                    saved = await data.save_reports(conn, [values], [(point.id, message)])
                    assert saved
                latencies.append((time.perf_counter() - sent) * 1000)

        await asyncio.gather(*(worker() for _ in range(connections)))
        elapsed = time.perf_counter() - started
        return Load(
            len(latencies) / elapsed, percentile(latencies, 0.5), percentile(latencies, 0.99), len(latencies), 0
        )
    finally:
        await pool.close()


async def counts(pipeline: Pipeline) -> dict[str, int]:
    """Reports committed, events in the stream, events notify recorded."""
    await drained(pipeline)
    status = await asyncpg.connect(pipeline.database_urls["status"])
    notify = await asyncpg.connect(pipeline.database_urls["notify"])
    try:
        committed = await status.fetchval("SELECT count(*) FROM status_reports WHERE cause = 'report'")
        recorded = await notify.fetchval("SELECT count(*) FROM status_observations")
        distinct = await notify.fetchval("SELECT count(DISTINCT (point_id, version)) FROM status_observations")
    finally:
        await status.close()
        await notify.close()
    stream = await status_stream_messages(pipeline)
    return {
        "committed": committed,
        "published": stream[STATUS_CHANGED.type],
        "recorded": recorded,
        "recorded_distinct": distinct,
    }


async def measure(pipeline: Pipeline, wrk: str, tmp: Path, seconds: int, connections: int) -> dict:
    """Warm up, then load and probe together; then count at the far end."""
    public = [p for p in pipeline.points if p.visibility == Visibility.public]
    probe_points = public[:PROBE_POINTS]
    probe_ids = {p.id for p in probe_points}
    others = [p for p in pipeline.points if p.id not in probe_ids]
    warm, loaded = others[:WARMUP_POINTS], others[WARMUP_POINTS:]
    script = tmp / "reports.lua"
    script.write_text(WRK_SCRIPT)
    (tmp / "warm.txt").write_text("\n".join(str(p.id) for p in warm))
    (tmp / "points.txt").write_text("\n".join(str(p.id) for p in loaded))
    token = pipeline.token("admin")
    base = pipeline.urls["status"]
    warmup = await run_wrk(wrk, script, tmp / "warm.txt", base, token, WARMUP_S, connections)
    await drained(pipeline)
    search_ms = await search_query_ms(pipeline, probe_points[0])
    stop = asyncio.Event()
    probing = asyncio.create_task(probe(pipeline, probe_points, stop=stop, poll_search=search_ms < SEARCH_FAST_MS))
    cpu_before, started = pipeline.cpu_seconds(), time.perf_counter()
    load = await run_wrk(wrk, script, tmp / "points.txt", base, token, seconds, connections)
    elapsed = time.perf_counter() - started
    cpu = cpu_cores(cpu_before, pipeline.cpu_seconds(), elapsed)
    stop.set()
    probes = await probing
    far_end = await counts(pipeline)
    base_load = await baseline(pipeline.infra.database_url, pipeline.namespace, loaded, seconds, connections)
    return {
        "warmup": warmup,
        "load": load,
        "probes": probes,
        "counts": far_end,
        "baseline": base_load,
        "cpu": cpu,
        "search_ms": search_ms,
    }


def main() -> None:
    """Run the pipeline, measure, print the comparison with the targets."""
    console = Console()
    wrk = shutil.which("wrk")
    if wrk is None:
        console.print("[yellow]bench_status_reports needs wrk (apt install wrk); skipped[/]")
        return
    seconds = int(os.environ.get("BENCH_SECONDS", "20"))
    connections = int(os.environ.get("BENCH_CONNECTIONS", "32"))
    workers = int(os.environ.get("BENCH_STATUS_WORKERS", "1"))
    console.print(f"starting the pipeline with {POINT_COUNT:,} points (status workers: {workers}) …")
    points = bench_points()
    started = time.perf_counter()
    with running_pipeline(points, status_workers=workers) as pipeline, tempfile.TemporaryDirectory() as tmp:
        console.print(f"status, search and notify hold every point after {time.perf_counter() - started:.0f} s")
        try:
            results = asyncio.run(measure(pipeline, wrk, Path(tmp), seconds, connections))
        except Exception:
            console.print(tail_logs(pipeline))
            raise
    report(console, results, seconds, connections, workers)


def report(console: Console, r: dict, seconds: int, connections: int, workers: int) -> None:
    """The measurements, then each target with PASS/FAIL."""
    load, base, probes, far = r["load"], r["baseline"], r["probes"], r["counts"]
    table = Table(title=f"status reports, {connections} connections, {seconds} s, {POINT_COUNT:,} points")
    for col in ("what", "reports/s", "p50 ms", "p99 ms", "requests", "errors"):
        table.add_column(col, justify="left" if col == "what" else "right")
    table.add_row(
        "HTTP API, whole pipeline",
        f"{load.rps:,.0f}",
        f"{load.p50_ms:.1f}",
        f"{load.p99_ms:.1f}",
        f"{load.completed:,}",
        str(load.errors),
    )
    table.add_row(
        "baseline: same statements, asyncpg",
        f"{base.rps:,.0f}",
        f"{base.p50_ms:.1f}",
        f"{base.p99_ms:.1f}",
        f"{base.completed:,}",
        "0",
    )
    console.print(table)
    far_table = Table(title="at the far end, after the pipeline drained")
    for col in ("reports committed", "changed events in the stream", "recorded by notify", "distinct versions"):
        far_table.add_column(col, justify="right")
    far_table.add_row(*(f"{far[k]:,}" for k in ("committed", "published", "recorded", "recorded_distinct")))
    console.print(far_table)
    visible_p50, visible_p99 = percentile(probes.visible_ms, 0.5), percentile(probes.visible_ms, 0.99)
    exactly_once = far["committed"] == far["published"] == far["recorded"] == far["recorded_distinct"]
    targets = Table(title="targets")
    for col in ("target", "measured", "result"):
        targets.add_column(col)
    checks = (
        (f"at least {TARGET_RATE:,.0f} reports/s", f"{load.rps:,.0f}/s", load.rps >= TARGET_RATE),
        (
            "every report committed and published once",
            "equal counts" if exactly_once else "counts differ",
            exactly_once,
        ),
        (
            f"report to visible p99 < {TARGET_VISIBLE_P99_MS:,.0f} ms",
            f"{visible_p99:.0f} ms",
            bool(probes.visible_ms) and visible_p99 < TARGET_VISIBLE_P99_MS,
        ),
    )
    for name, measured, ok in checks:
        targets.add_row(name, measured, "[green]PASS[/]" if ok else "[red]FAIL[/]")
    console.print(targets)
    cpu = ", ".join(f"{k} {v:.2f}" for k, v in sorted(r["cpu"].items(), key=lambda kv: -kv[1]))
    console.print(
        f"ratio API/baseline (reports/s): {load.rps / base.rps if base.rps else 0:.3f}\n"
        f"report to visible: p50 {visible_p50:.0f} ms, p99 {visible_p99:.0f} ms over {len(probes.visible_ms)} probes "
        f"(one every {PROBE_INTERVAL_S} s during the load; {probes.lost} not seen), measured at {probes.where}; "
        f"search answered a nearest query in {r['search_ms']:.1f} ms before the load\n"
        f"CPU cores busy during the load (processes this bench started, and the PostgreSQL backends of its "
        f"databases): {cpu}\n"
        f"status workers: {workers}; warm-up: {r['warmup'].completed:,} reports in {WARMUP_S} s on other points; "
        f"wrk counts requests completed within the run, the far end also those in flight when it stopped"
        + (f"\nwrk's errors: {load.error_lines}" if load.errors else "")
    )
