"""Registry bulk import: 17,000 points from one CSV against the same rows created one by one through the API.

Runs the real registry app under uvicorn (its own process, as `poi run` does) on the PostgreSQL and NATS of
POI_DATABASE_URL / POI_NATS_URL, or on embedded ones started for the run, each measurement in a fresh database.
"""

import asyncio
import contextlib
import os
import secrets
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import nats
from rich.console import Console
from rich.table import Table

from poi_cli import embedded, stack
from poi_cli.demo import PLANNED_POINTS, national_register
from poi_cli.seed import import_csv
from poi_registry.app import MIGRATIONS
from poi_shared import db
from poi_shared.auth import issue_token
from poi_shared.contracts import STREAMS

TARGET_S = 10.0
BASELINE_CONNECTIONS = 8  # creates in flight at once: one request per point, but not one at a time on the wire
SECRET = "bench-secret-not-for-production-0123456789"
READY_TIMEOUT_S = 90.0


class Registry:
    """A registry process on a fresh database of its own."""

    def __init__(self, infra: stack.Infrastructure, namespace: str, logs: Path) -> None:
        self.infra, self.namespace, self.logs = infra, namespace, logs
        self.port = embedded.free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.database_url = ""
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> "Registry":
        name = f"{self.namespace}_registry"
        asyncio.run(db.ensure_database(self.infra.database_url, name))
        self.database_url = db.database_url(self.infra.database_url, name)
        asyncio.run(db.migrate(self.database_url, MIGRATIONS))
        env = stack.service_env(
            "registry", self.infra, {"registry": self.database_url}, namespace=self.namespace, secret=SECRET
        )
        env["POI_REGISTRY_LOG_LEVEL"] = "WARNING"
        self.process = stack.start_service("registry", self.port, env, self.logs / f"{self.namespace}.log")
        stack.wait_ready({"registry": self.port}, {"registry": self.process}, READY_TIMEOUT_S)
        return self

    def __exit__(self, *_: object) -> None:
        if self.process is not None:
            stack.stop_services({"registry": self.process})
        asyncio.run(self._drop())

    async def _drop(self) -> None:
        """Remove the run's database and streams."""
        conn = await asyncpg.connect(self.infra.database_url)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{self.namespace}_registry" WITH (FORCE)')
        finally:
            await conn.close()
        nc = await nats.connect(self.infra.nats_url)
        try:
            for spec in STREAMS:
                with contextlib.suppress(nats.js.errors.NotFoundError):
                    await nc.jetstream().delete_stream(spec.stream_name(self.namespace))
        finally:
            await nc.close()

    def outbox_drained_s(self, since: float, limit_s: float = 300.0) -> float:
        """Seconds from `since` until the relay has published every event."""

        async def pending() -> int:
            conn = await asyncpg.connect(self.database_url)
            try:
                return int(await conn.fetchval("SELECT count(*) FROM outbox"))
            finally:
                await conn.close()

        while asyncio.run(pending()) and time.perf_counter() - since < limit_s:
            time.sleep(0.2)
        return time.perf_counter() - since


def _admin() -> dict[str, str]:
    return {"Authorization": f"Bearer {issue_token(SECRET, subject='bench', roles=['admin'])}"}


def bulk_import(registry: Registry, body: bytes) -> tuple[float, dict[str, Any], float]:
    """Seconds for one import request, its report, and seconds until its events were published."""
    headers = {**_admin(), "content-type": "text/csv"}
    with httpx.Client(timeout=600) as client:
        start = time.perf_counter()
        response = client.post(f"{registry.base}/v1/points/import", content=body, headers=headers)
        elapsed = time.perf_counter() - start
    response.raise_for_status()
    return elapsed, response.json(), registry.outbox_drained_s(start)


def one_by_one(registry: Registry, points: list[dict[str, Any]]) -> float:
    """Seconds to create every point with its own POST /v1/points."""
    bodies = [{k: v for k, v in p.items() if k != "code"} for p in points]

    async def run() -> float:
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        for body in bodies:
            queue.put_nowait(body)
        headers = _admin()

        async def worker(client: httpx.AsyncClient) -> None:
            while not queue.empty():
                body = queue.get_nowait()
                response = await client.post("/v1/points", json=body, headers=headers)
                response.raise_for_status()

        limits = httpx.Limits(max_connections=BASELINE_CONNECTIONS)
        async with httpx.AsyncClient(base_url=registry.base, timeout=60, limits=limits) as client:
            start = time.perf_counter()
            await asyncio.gather(*(worker(client) for _ in range(BASELINE_CONNECTIONS)))
            return time.perf_counter() - start

    return asyncio.run(run())


def main() -> None:
    """Import 17,000 points, import them again, create them one by one in a fresh register; print the ratio."""
    console = Console()
    count = int(os.environ.get("BENCH_REGISTRY_POINTS", PLANNED_POINTS))
    points = national_register(count, seed=17)
    body = import_csv(points)
    urls = {k: os.environ.get(f"POI_{k.upper()}_URL") for k in ("database", "nats")}
    with tempfile.TemporaryDirectory(prefix="bench-registry-") as tmp:
        root = Path(tmp)
        infra = stack.start_infrastructure(
            root,
            database_url=urls["database"],
            nats_url=urls["nats"],
            redis_url="redis://unused",
            ports={name: embedded.free_port() for name in stack.EMBEDDED_PORTS},
            durable=False,
        )
        try:
            tag = secrets.token_hex(3)
            with Registry(infra, f"bimp{tag}", root) as registry:
                import_s, report, import_published_s = bulk_import(registry, body)
                again_s, again, _ = bulk_import(registry, body)
            with Registry(infra, f"bone{tag}", root) as registry:
                single_s = one_by_one(registry, points)
        finally:
            infra.stop()
    _report(console, count, len(body), import_s, report, import_published_s, again_s, again, single_s)


def _report(
    console: Console,
    count: int,
    size: int,
    import_s: float,
    report: dict[str, Any],
    published_s: float,
    again_s: float,
    again: dict[str, Any],
    single_s: float,
) -> None:
    table = Table(
        title=f"{count:,} points ({size / 1e6:.1f} MB of CSV), registry under uvicorn on {os.cpu_count()} CPUs"
    )
    for column in ("how", "seconds", "points/s", "result"):
        table.add_column(column)
    table.add_row(
        "import, one CSV request", f"{import_s:.2f}", f"{count / import_s:,.0f}", f"{report['created']:,} created"
    )
    table.add_row("  … until its events were published", f"{published_s:.2f}", f"{count / published_s:,.0f}", "")
    table.add_row(
        "import the same file again", f"{again_s:.2f}", f"{count / again_s:,.0f}", f"{again['unchanged']:,} unchanged"
    )
    table.add_row(
        f"baseline: one POST per point ({BASELINE_CONNECTIONS} in flight)",
        f"{single_s:.2f}",
        f"{count / single_s:,.0f}",
        f"{count:,} created",
    )
    console.print(table)
    ratio = single_s / import_s
    verdict = "[green]met[/]" if import_s < TARGET_S else "[red]missed[/]"
    console.print(f"ratio one-by-one/import (seconds): {ratio:.1f}x faster")
    console.print(f"target: import of {count:,} points under {TARGET_S:.0f} s: {import_s:.2f} s, {verdict}")


if __name__ == "__main__":
    main()
