"""The register through the running services: `poi import` a file, find its points in search, retire one."""

import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from poi_cli.demo import national_register
from poi_cli.seed import import_csv
from tests.e2e.conftest import RunningStack

pytestmark = pytest.mark.e2e
POI = str(Path(sys.executable).parent / "poi")
POLL_BOUND_S = 30.0


def eventually(probe: Callable[[], Any], what: str) -> Any:
    deadline = time.monotonic() + POLL_BOUND_S
    while time.monotonic() < deadline:
        if result := probe():
            return result
        time.sleep(0.1)
    raise AssertionError(f"{what} did not happen within {POLL_BOUND_S:.0f}s")


def nearest_ids(client: httpx.Client, services: RunningStack, point: dict[str, Any]) -> set[str]:
    response = client.get(
        f"{services.urls['search']}/v1/search/nearest",
        params={"lat": point["lat"], "lon": point["lon"], "limit": 50, "radius_km": 5},
    )
    assert response.status_code == 200, response.text
    return {item["id"] for item in response.json()["items"]}


def poi_import(services: RunningStack, path: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    token = services.token(["admin"])
    argv = [POI, "import", str(path), "--url", services.urls["registry"], "--token", token, *extra]
    return subprocess.run(
        argv, capture_output=True, text=True, timeout=120, env={"COLUMNS": "200", "PYTHONIOENCODING": "utf-8"}
    )


def test_imported_points_reach_search_and_retired_ones_leave(services: RunningStack, tmp_path: Path) -> None:
    points = [{**p, "code": f"E2E-{n}"} for n, p in enumerate(national_register(40, seed=99))]
    path = tmp_path / "points.csv"
    path.write_bytes(import_csv(points))
    imported = poi_import(services, path)
    assert imported.returncode == 0, imported.stdout + imported.stderr
    assert "40 rows: 40 created, 0 updated, 0 unchanged, 0 with errors" in imported.stdout

    again = poi_import(services, path)
    assert "40 rows: 0 created, 0 updated, 40 unchanged" in again.stdout

    with httpx.Client(timeout=10) as client:
        listed = client.get(f"{services.urls['registry']}/v1/points", params={"lifecycle": "all", "limit": 500}).json()
        by_code = {p["code"]: p for p in listed["items"]}
        public = next(p for p in points if p["visibility"] == "public" and p["katotth"][2:4] not in ("14", "44"))
        hidden = [p for p in points if p["visibility"] == "hidden"]
        shown = by_code[public["code"]]
        eventually(lambda: shown["id"] in nearest_ids(client, services, public), "an imported point appears in search")
        for point in hidden:
            assert point["code"] not in by_code

        admin = {"Authorization": f"Bearer {services.token(['admin'])}"}
        retired = client.post(f"{services.urls['registry']}/v1/points/{shown['id']}/retire", headers=admin)
        assert retired.status_code == 200 and retired.json()["retired"] is True
        eventually(lambda: shown["id"] not in nearest_ids(client, services, public), "a retired point leaves search")


def test_poi_import_shows_the_row_errors(services: RunningStack, tmp_path: Path) -> None:
    [point] = national_register(1, seed=5)
    path = tmp_path / "bad.csv"
    path.write_bytes(import_csv([{**point, "code": "E2E-BAD", "lat": 0.0, "lon": 0.0}]))
    result = poi_import(services, path)
    assert result.returncode == 1
    assert "nothing was imported" in result.stdout and "km outside" in result.stdout and "lat" in result.stdout
