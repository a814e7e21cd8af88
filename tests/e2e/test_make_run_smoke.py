"""`make run`'s path: `poi run` starts embedded servers and the four services, supervises them, refuses a second
run, and Ctrl-C leaves nothing behind. One session covers every scenario, as starting the stack is the slow part."""

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import psutil
import pytest

from poi_cli import embedded, stack

pytestmark = pytest.mark.e2e
POI = str(Path(sys.executable).parent / "poi")
BANNER = "Points of Invincibility — running"


def free_offset() -> int:
    """A port offset under which every port `poi run` uses is free."""
    # Offsets that move the embedded servers' ports above Linux's default range of ephemeral ports (32768 to 60999):
    # there, any client connection of the suite may hold one as its own port for a while, where nothing listens (so
    # port_open cannot see it) but no server can bind.
    for offset in range(61000 - min(stack.EMBEDDED_PORTS.values()), 65536 - max(stack.EMBEDDED_PORTS.values()), 137):
        ports = [p + offset for p in (*stack.SERVICE_PORTS.values(), *stack.EMBEDDED_PORTS.values())]
        if all(p < 65536 and not embedded.port_open(p) for p in ports):
            return offset
    raise RuntimeError("no free set of ports")


def wait_for(condition: Callable[[], bool], what: str, timeout_s: float = 120.0) -> None:
    """Poll generously; the bound only keeps a broken run from hanging the suite."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.3)


def ready(client: httpx.Client, url: str) -> bool:
    """True if the service answers /readyz with 200."""
    try:
        return client.get(f"{url}/readyz").status_code == 200
    except httpx.HTTPError:
        return False


def child(poi: psutil.Process, matches: Callable[[psutil.Process], bool]) -> psutil.Process | None:
    """The running child of poi run that matches."""
    for process in poi.children():
        try:
            if process.status() != psutil.STATUS_ZOMBIE and matches(process):
                return process
        except psutil.NoSuchProcess:
            pass
    return None


def named(name: str) -> Callable[[psutil.Process], bool]:
    return lambda p: p.name() == name


def service(name: str) -> Callable[[psutil.Process], bool]:
    return lambda p: f"poi_{name}.app:create_app" in p.cmdline()


def test_poi_run_supervises_refuses_a_second_run_and_stops_cleanly(tmp_path: Path, server_dir: Path) -> None:
    offset = free_offset()
    data_dir = server_dir / "data"
    env = {k: v for k, v in os.environ.items() if k not in ("POI_DATABASE_URL", "POI_NATS_URL", "POI_REDIS_URL")}
    env.pop("XDG_RUNTIME_DIR", None)  # as in containers and ssh sessions without a login manager
    env.update({"POI_DATA_DIR": str(data_dir), "POI_PORT_OFFSET": str(offset)})
    out = tmp_path / "poi-run.out"
    with out.open("wb") as sink:
        proc = subprocess.Popen([POI, "run", "--demo-points", "40"], env=env, stdout=sink, stderr=subprocess.STDOUT)
    poi = psutil.Process(proc.pid)
    urls = {s: f"http://127.0.0.1:{p + offset}" for s, p in stack.SERVICE_PORTS.items()}

    def said(pattern: str) -> bool:
        return re.search(pattern, out.read_text(errors="replace")) is not None

    try:
        with httpx.Client(timeout=2) as client:
            wait_for(
                lambda: proc.poll() is not None or all(ready(client, url) for url in urls.values()), "readiness", 180
            )
            assert proc.poll() is None, out.read_text()
            assert len(poi.children(recursive=True)) >= 7  # three servers and four services

            # A second run on the same data directory is refused before it prints anything else.
            second = subprocess.run([POI, "run"], env=env, capture_output=True, text=True, timeout=60)
            said_second = second.stdout + second.stderr
            assert second.returncode == 1, said_second
            assert f"another poi run (pid {proc.pid}, data dir {data_dir})" in said_second
            assert f"registry {stack.SERVICE_PORTS['registry'] + offset}" in said_second
            assert "Starting" not in said_second and BANNER not in said_second
            # So is one on another data directory whose ports the first run holds.
            third_env = {**env, "POI_DATA_DIR": str(server_dir / "other")}
            third = subprocess.run([POI, "run"], env=third_env, capture_output=True, text=True, timeout=60)
            said_third = third.stdout + third.stderr
            assert third.returncode == 1, said_third
            assert "ports in use" in said_third and f"another poi run (pid {proc.pid}" in said_third
            assert "Starting" not in said_third and BANNER not in said_third
            assert proc.poll() is None and ready(client, urls["search"])

            kept = {s: child(poi, service(s)) for s in ("status", "search", "notify")}

            # kill -9 NATS: reported with its signal, restarted; search answers again.
            nats = child(poi, named("nats-server"))
            assert nats is not None
            nats.kill()
            wait_for(lambda: said(r"nats was killed by SIGKILL"), "the report of nats' death")
            wait_for(lambda: said(r"nats restarted \(pid \d+\)"), "nats' restart")
            assert not psutil.pid_exists(nats.pid) or nats.status() != psutil.STATUS_ZOMBIE
            wait_for(lambda: ready(client, urls["search"]), "search's readiness after nats' restart")
            nearest = client.get(
                f"{urls['search']}/v1/search/nearest", params={"lat": 50.45, "lon": 30.52, "radius_km": 200}
            )
            assert nearest.status_code == 200

            # kill -9 a service: restarted, answers again.
            registry = child(poi, service("registry"))
            assert registry is not None
            registry.kill()
            wait_for(lambda: said(r"registry was killed by SIGKILL"), "the report of registry's death")
            wait_for(lambda: said(r"registry restarted \(pid \d+\)"), "registry's restart")
            wait_for(lambda: ready(client, urls["registry"]), "registry's readiness after its restart")

            # kill -9 PostgreSQL: restarted over its stale postmaster.pid; the database services answer again.
            postgres = child(poi, named("postgres"))
            assert postgres is not None
            postgres.kill()
            wait_for(lambda: said(r"postgresql was killed by SIGKILL"), "the report of postgresql's death")
            wait_for(lambda: said(r"postgresql restarted \(pid \d+\)"), "postgresql's restart")
            for name in ("registry", "status", "notify"):
                wait_for(lambda name=name: ready(client, urls[name]), f"{name}'s readiness after postgresql's restart")
            point_id = nearest.json()["items"][0]["id"]
            assert client.get(f"{urls['registry']}/v1/points/{point_id}").status_code == 200

            # The services nobody killed kept running through all of it.
            assert {s: child(poi, service(s)) for s in kept} == kept
            children = poi.children(recursive=True)
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=60)
    output = out.read_text(errors="replace")
    assert proc.returncode == 0, output
    assert "Stopped." in output
    assert "XDG_RUNTIME_DIR" not in output
    leftovers = [c for c in children if c.is_running() and c.status() != psutil.STATUS_ZOMBIE]
    assert not leftovers, f"left running: {leftovers}"
    for port in (*stack.SERVICE_PORTS.values(), *stack.EMBEDDED_PORTS.values()):
        assert not embedded.port_open(port + offset)
    assert (data_dir / "postgres" / "PG_VERSION").exists()
