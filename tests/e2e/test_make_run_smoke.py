"""`make run`'s path: `poi run` starts embedded servers and the four services, and Ctrl-C leaves nothing behind."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil
import pytest

from poi_cli import embedded, stack

pytestmark = pytest.mark.e2e


def free_offset() -> int:
    """A port offset under which every port `poi run` uses is free."""
    for offset in range(1000, 9000, 137):
        ports = [p + offset for p in (*stack.SERVICE_PORTS.values(), *stack.EMBEDDED_PORTS.values())]
        if all(p < 65536 and not embedded.port_open(p) for p in ports):
            return offset
    raise RuntimeError("no free set of ports")


def test_poi_run_starts_everything_and_stops_cleanly(tmp_path: Path) -> None:
    offset = free_offset()
    env = {k: v for k, v in os.environ.items() if k not in ("POI_DATABASE_URL", "POI_NATS_URL", "POI_REDIS_URL")}
    env.update({"POI_DATA_DIR": str(tmp_path / "data"), "POI_PORT_OFFSET": str(offset)})
    poi = Path(sys.executable).parent / "poi"
    proc = subprocess.Popen(
        [str(poi), "run", "--demo-points", "40"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    urls = {s: f"http://127.0.0.1:{p + offset}" for s, p in stack.SERVICE_PORTS.items()}
    try:
        deadline = time.monotonic() + 180
        ready: set[str] = set()
        with httpx.Client(timeout=2) as client:
            while ready != set(urls) and time.monotonic() < deadline and proc.poll() is None:
                for service, url in urls.items():
                    try:
                        if client.get(f"{url}/readyz").status_code == 200:
                            ready.add(service)
                    except httpx.HTTPError:
                        pass
                time.sleep(0.5)
            assert ready == set(urls), f"ready: {sorted(ready)}; poi run exited with {proc.poll()}"
            children = psutil.Process(proc.pid).children(recursive=True)
            assert len(children) >= 7  # three servers and four services
            nearest = client.get(
                f"{urls['search']}/v1/search/nearest", params={"lat": 50.45, "lon": 30.52, "radius_km": 200}
            )
            assert nearest.status_code == 200
    finally:
        proc.send_signal(signal.SIGINT)
        output = proc.communicate(timeout=60)[0].decode(errors="replace")
    assert proc.returncode == 0, output
    assert "Stopped." in output
    leftovers = [c for c in children if c.is_running() and c.status() != psutil.STATUS_ZOMBIE]
    assert not leftovers, f"left running: {leftovers}"
    for port in (*stack.SERVICE_PORTS.values(), *stack.EMBEDDED_PORTS.values()):
        assert not embedded.port_open(port + offset)
    assert (tmp_path / "data" / "postgres" / "PG_VERSION").exists()
