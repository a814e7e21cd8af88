"""Search nearest over HTTP against an empty endpoint of the same server: throughput, latency, build time, RSS."""

import asyncio
import multiprocessing
import os
import random
import re
import resource
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil
from rich.console import Console
from rich.table import Table

from bench.search_app import EVENTS_ENV, POINT_COUNT, demo_messages, write_events

ROOT = Path(__file__).resolve().parent.parent
CONNECTIONS = 64
MAX_REQUESTS = 1_000_000  # per run, beside the time bound
QUERY = "limit=10&radius_km=50&state=open&service=heat&service=charging"
TARGET_RATIO, TARGET_P99_MS, TARGET_BUILD_S, TARGET_RSS_MB = 0.6, 20.0, 3.0, 200.0
WRK_SCRIPT = """
local mode, cap, done = "empty", 0, 0
function init(args)
  mode, cap = args[1], tonumber(args[2])
  math.randomseed(os.time() + math.floor(os.clock() * 1000000))
end
function request()
  if mode == "empty" then return wrk.format("GET", "/empty") end
  local lat, lon = 46 + 6 * math.random(), 23 + 17 * math.random()
  return wrk.format("GET", string.format("/v1/search/nearest?lat=%.5f&lon=%.5f&QUERY", lat, lon))
end
function response(status, headers, body)
  done = done + 1
  if done >= cap then wrk.thread:stop() end
end
""".replace("QUERY", QUERY)


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


def _path(kind: str, rng: random.Random) -> str:
    """A request path: /empty, or nearest at a random spot over Ukraine."""
    if kind == "empty":
        return "/empty"
    return f"/v1/search/nearest?lat={rng.uniform(46, 52):.5f}&lon={rng.uniform(23, 40):.5f}&{QUERY}"


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
    cmd += ["-s", str(script), base, "--", kind, str(MAX_REQUESTS)]
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


def _wait_ready(proc: subprocess.Popen[bytes], base: str, log: Path) -> None:
    """Poll /empty until the server answers (it builds the read model first), at most 120 s."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}:\n{log.read_text()[-2000:]}")
        try:
            if httpx.get(f"{base}/empty", timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"server not ready in 120 s:\n{log.read_text()[-2000:]}")


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


def main() -> None:
    """Build, serve, load /empty then nearest, and print the comparison with the targets."""
    seconds = float(os.environ.get("BENCH_SECONDS", "10"))
    warmup = min(2.0, max(1.0, seconds / 5))
    wrk = shutil.which("wrk") if os.environ.get("BENCH_LOADGEN", "auto") != "python" else None  # python: no wrk
    cores = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    server_cpus, client_cpus = ({cores[0]}, set(cores[1:])) if len(cores) >= 2 else (set(), set())
    console = Console()
    with tempfile.TemporaryDirectory(prefix="bench-search-") as tmp:
        events, log, script = Path(tmp) / "events.jsonl", Path(tmp) / "server.log", Path(tmp) / "nearest.lua"
        write_events(events, demo_messages())
        script.write_text(WRK_SCRIPT)
        cold = subprocess.run(
            [sys.executable, "-m", "bench.search_app", str(events)],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=300,
            check=True,
        )
        build_s = float(cold.stdout.strip())
        port = _free_port()
        base = f"http://127.0.0.1:{port}"
        cmd = [sys.executable, "-m", "uvicorn", "bench.search_app:create_app", "--factory", "--no-access-log"]
        cmd += ["--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"]
        with log.open("wb") as out, ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
            proc = subprocess.Popen(
                cmd, cwd=ROOT, env={**os.environ, EVENTS_ENV: str(events)}, stdout=out, stderr=subprocess.STDOUT
            )
            try:
                if server_cpus:
                    os.sched_setaffinity(proc.pid, server_cpus)
                _wait_ready(proc, base, log)
                server = psutil.Process(proc.pid)
                rss_mb = server.memory_info().rss / 1e6
                probe = httpx.get(f"{base}/v1/search/nearest?lat=50.45&lon=30.52&{QUERY}", timeout=10)
                probe_count = int(probe.raise_for_status().json()["count"])  # near Kyiv: must find some
                results: dict[str, Result] = {}
                for kind in ("empty", "nearest"):
                    for duration in (warmup, seconds):
                        _wait_idle(server)
                        cpu = sum(server.cpu_times()[:2])
                        start = time.perf_counter()
                        if wrk:
                            result = _wrk_load(wrk, script, base, kind, duration, client_cpus)
                        else:
                            job = pool.submit(python_load, base, kind, duration, client_cpus)
                            result = job.result(timeout=duration + 60)
                        result.server_cpu = (sum(server.cpu_times()[:2]) - cpu) / (time.perf_counter() - start)
                    results[kind] = result
                rss_after_mb = server.memory_info().rss / 1e6
            finally:
                _stop(proc)
    _report(console, results, build_s, rss_mb, rss_after_mb, probe_count, seconds, wrk, server_cpus, client_cpus)


def _report(
    console: Console,
    results: dict[str, Result],
    build_s: float,
    rss_mb: float,
    rss_after_mb: float,
    probe_count: int,
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
    for name, r in (("/empty", results["empty"]), ("nearest", results["nearest"])):
        cpu = f"{r.server_cpu:.2f}", f"{r.client_cpu:.2f}"
        table.add_row(
            name, f"{r.rps:,.0f}", f"{r.p50_ms:.2f}", f"{r.p99_ms:.2f}", f"{r.requests:,}", str(r.errors), *cpu
        )
    console.print(table)
    ratio = results["nearest"].rps / results["empty"].rps if results["empty"].rps else 0.0
    targets = Table(title="targets")
    for col in ("target", "measured", "result"):
        targets.add_column(col)
    checks = (
        (f"nearest throughput >= {TARGET_RATIO:.0%} of /empty", f"{ratio:.1%}", ratio >= TARGET_RATIO),
        (
            f"nearest p99 < {TARGET_P99_MS:g} ms",
            f"{results['nearest'].p99_ms:.2f} ms",
            0 < results["nearest"].p99_ms < TARGET_P99_MS,
        ),
        (f"cold build of {POINT_COUNT:,} points < {TARGET_BUILD_S:g} s", f"{build_s:.2f} s", build_s < TARGET_BUILD_S),
        (f"server RSS after loading < {TARGET_RSS_MB:g} MB", f"{rss_mb:.0f} MB", rss_mb < TARGET_RSS_MB),
    )
    for name, measured, ok in checks:
        targets.add_row(name, measured, "[green]PASS[/]" if ok else "[red]FAIL[/]")
    console.print(targets)
    pinning = (
        f"server on CPU {sorted(server_cpus)}, client on CPU {sorted(client_cpus)}" if server_cpus else "no pinning"
    )
    console.print(
        f"ratio nearest/empty (req/s): {ratio:.3f}\n"
        f"nearest = random lat 46..52, lon 23..40, {QUERY.replace('&', ' ')}; "
        f"a probe near Kyiv found {probe_count} points\n"
        f"load generator: {loadgen}; it shares the machine with the server "
        f"({os.cpu_count()} cores, {pinning}); CPU columns = cores busy during the run\n"
        + ("wrk counts only requests completed within the run\n" if wrk else "")
        + f"cold build = parse + apply of {2 * POINT_COUNT:,} point and status events in a fresh process; "
        f"server RSS after the load: {rss_after_mb:.0f} MB"
    )
    empty = results["empty"]
    if empty.client_cpu >= 0.9 and empty.server_cpu < 0.9:
        console.print(
            f"[yellow]note: /empty was client-bound (client {empty.client_cpu:.2f} cores, server "
            f"{empty.server_cpu:.2f}): the baseline is low, the ratio flatters nearest; install wrk for a fair one[/]"
        )
