"""The live feed from a status process: an event reaches a client, and SIGTERM ends open feeds cleanly at once
instead of leaving uvicorn to wait for them and then cut them."""

import signal
import time
from pathlib import Path

import httpx
import pytest

from poi_cli import embedded, stack
from tests.e2e.conftest import SECRET, RunningStack

pytestmark = pytest.mark.e2e
POLL_BOUND_S = 30.0
POINT = {
    "name_uk": "Пункт незламності — Бібліотека",
    "category": "state",
    "lat": 49.84,
    "lon": 24.03,
    "katotth": "UA46060250010015970",
    "address_uk": "вул. Городоцька, 10, Львів",
    "settlement": "Львів",
    "capacity": 60,
    "services": ["heat", "charging"],
    "schedule": {"kind": "on_blackout"},
}


def test_sigterm_ends_open_feeds_cleanly_and_the_process_exits(services: RunningStack, tmp_path: Path) -> None:
    port = embedded.free_port()
    env = stack.service_env(
        "status", services.infra, services.database_urls, namespace=services.namespace, secret=SECRET
    )
    env["POI_STATUS_RELAY_IN_PROCESS"] = "false"  # the stack's status process relays
    process = stack.start_service("status", port, env, tmp_path / "status.log")
    try:
        stack.wait_ready({"status": port}, {"status": process}, timeout_s=60)
        url = f"http://127.0.0.1:{port}"
        coordinator = {"Authorization": f"Bearer {services.token(['coordinator'], katotth=['UA46'])}"}
        with httpx.Client(timeout=30) as client:
            point_id = client.post(f"{services.urls['registry']}/v1/points", json=POINT, headers=coordinator).json()[
                "id"
            ]
            with client.stream("GET", f"{url}/v1/status/feed", params={"katotth": "UA4606"}) as feed:
                assert feed.status_code == 200
                lines = feed.iter_lines()
                assert next(lines).startswith(": following")
                # A blackout starts in the raion: the point's change reaches the client, from the stack's status.
                deadline = time.monotonic() + POLL_BOUND_S
                while True:
                    activated = client.post(
                        f"{services.urls['status']}/v1/status/areas/activate",
                        json={"katotth": ["UA4606"]},
                        headers=coordinator,
                    )
                    assert activated.status_code == 200, activated.text
                    if activated.json()["points_changed"]:
                        break
                    assert time.monotonic() < deadline, "status never learnt of the point"
                    time.sleep(0.2)
                received: list[str] = []
                for line in lines:
                    received.append(line)
                    if line == "" and any(point_id in seen for seen in received):
                        break  # the end of the point's event
                assert "event: changed" in received and any('"state":"open"' in line for line in received)

                process.send_signal(signal.SIGTERM)
                # The stream ends as a complete chunked body; cut by a timeout, reading it would raise.
                rest = list(lines)
                assert all(line == "" or line.startswith(":") for line in rest), rest
        # Uvicorn shuts down gracefully, then ends by the signal it was sent, as it always does.
        assert process.wait(timeout=POLL_BOUND_S) == -signal.SIGTERM
        log = (tmp_path / "status.log").read_text()
        assert "Application shutdown complete" in log
        assert "timeout graceful shutdown exceeded" not in log
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
