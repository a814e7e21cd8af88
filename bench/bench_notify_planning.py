"""Notify fan-out: 1,000,000 area subscribers spread like the population, 5,000 points changing within a minute.

The national dataset (`poi seed`'s 10,676 points) is learnt as the registry's events would teach it. A million
phones, each with one area subscription, are placed like the points themselves: in the dataset's settlements,
weighted by population, scattered over each settlement's radius, following 1 to 5 km round home (some only for
points with heat or charging); they are bulk-loaded with COPY, their H3 cells from poi_notify.cells.

A blackout starts: 5,000 points change state over one simulated minute (most open on an area activation, some
close or fill up). The real code runs as the service would: each status event through the consumer's handler
(inbox, current state, queue), the planner and the flusher at their default intervals (5 s, 2 s) and at the same time
(the service runs them as two loops), and on past the end of the minute until every window has flushed (the second
windows of phones that heard more within 15 minutes included). Measured: the wall time of all of it (target under
60 s), and every phone's messages are checked: never two in one window (window starts at least alert_window_s apart).
The replica's in-memory index of area subscriptions (poi_notify.alerts.areas) is loaded once before the minute
starts, as at a replica's start, and timed on its own line.

Baseline: finding a change's area subscribers by scanning every subscription (exact distance on all 1,000,000
rows). It is timed on a sample of SAMPLE events and extrapolated to 5,000 (the table says so); it only finds
the subscribers, while the measured side also writes every window and message.

Settings: POI_DATABASE_URL to use a running PostgreSQL (else an embedded one); BENCH_SUBSCRIBERS to load fewer.
"""

import asyncio
import itertools
import math
import os
import random
import secrets
import tempfile
import time
import uuid
from collections import defaultdict
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
from pydantic import SecretStr
from rich.console import Console
from rich.table import Table

from poi_cli import embedded, stack
from poi_cli.demo import _OCCUPIED_OBLASTS, _REACHED, NATIONAL_POINTS, national_register, settlements
from poi_notify import cells, events
from poi_notify.alerts import service as alerts
from poi_notify.alerts.areas import AreaIndex
from poi_notify.app import MIGRATIONS, collect_garbage_less_often
from poi_notify.settings import NotifySettings
from poi_shared import db
from poi_shared.contracts import STATUS_CHANGED, OpenState, PointState, StatusCause, StatusState
from poi_shared.envelope import Event

SUBSCRIBERS = int(os.environ.get("BENCH_SUBSCRIBERS", 1_000_000))
CHANGES, MINUTE_S = 5_000, 60.0
TARGET_S = 60.0
SAMPLE = 10
CHUNK = 50_000
RADII_M = (1000, 2000, 3000, 5000)
SETTINGS = NotifySettings(phone_key=SecretStr("bench-phone-key"), alert_flush_batch=20_000)
START = datetime(2026, 11, 26, 16, 0, tzinfo=UTC)  # 18:00 in Kyiv: a winter evening, outside quiet hours


def point_states() -> list[PointState]:
    """The national dataset as the registry's events carry it."""
    now = datetime.now(UTC)
    return [
        PointState.model_validate({**p, "id": uuid.uuid4(), "version": 1, "updated_at": now})
        for p in national_register(NATIONAL_POINTS)
    ]


def subscriber_rows(count: int, rng: random.Random) -> Iterator[tuple[tuple, tuple]]:
    """(phones row, subscriptions row) for count residents placed like the population."""
    # As the dataset places points: no occupied oblasts, frontline ones by the share of people still there.
    towns = tuple(t for t in settlements() if t.katotth[2:4] not in _OCCUPIED_OBLASTS)
    cumulative = list(itertools.accumulate(t.population * _REACHED.get(t.katotth[2:4], 1.0) for t in towns))
    covering: dict[tuple[int, int], list[int]] = {}
    for i, town in enumerate(rng.choices(towns, cum_weights=cumulative, k=count)):
        distance = town.radius_km * math.sqrt(rng.random())
        angle = rng.uniform(0, 2 * math.pi)
        lat = town.lat + distance * math.cos(angle) / 111.32
        lon = town.lon + distance * math.sin(angle) / (111.32 * math.cos(math.radians(town.lat)))
        radius = rng.choice(RADII_M)
        # The covering depends only on the centre's cell and the radius: many neighbours share it.
        key = (cells.cell_of(lat, lon), radius)
        if key not in covering:
            covering[key] = cells.cells_covering(lat, lon, radius)
        wanted = rng.random()
        services = ["heat"] if wanted < 0.15 else ["charging"] if wanted < 0.2 else []
        phone_hash = f"{i:012d}{secrets.token_hex(10)}"
        yield (
            (phone_hash, f"+38067{i:07d}", "uk" if rng.random() < 0.9 else "en", START - timedelta(days=1)),
            (uuid.uuid4(), phone_hash, "area", lat, lon, radius, covering[key], services),
        )


async def load(pool: asyncpg.Pool, points: list[PointState], rng: random.Random) -> float:
    """Learn the points, then COPY the subscribers in; seconds the COPY and index build took."""
    async with db.connection(pool) as conn, conn.transaction():
        for point in points:
            await alerts.observe_point(conn, point)
        # Every point starts closed (status version 1): the blackout opens them.
        await conn.execute("UPDATE alert_points SET state = 'closed', status_version = 1")
    started = time.perf_counter()
    async with db.connection(pool) as conn:
        # Bulk load as one would: the GIN index is built once afterwards rather than row by row.
        await conn.execute("DROP INDEX subscriptions_cells_idx")
        rows = subscriber_rows(SUBSCRIBERS, rng)
        while chunk := list(itertools.islice(rows, CHUNK)):
            await conn.copy_records_to_table(
                "phones", records=[c[0] for c in chunk], columns=["phone_hash", "e164", "language", "confirmed_at"]
            )
            await conn.copy_records_to_table(
                "subscriptions",
                records=[c[1] for c in chunk],
                columns=["id", "phone_hash", "kind", "lat", "lon", "radius_m", "cells", "services"],
            )
        await conn.execute("SET maintenance_work_mem = '512MB'")
        await conn.execute(
            "CREATE INDEX subscriptions_cells_idx ON subscriptions USING gin (cells) WHERE kind = 'area'"
        )
        await conn.execute("ANALYZE")
    return time.perf_counter() - started


def blackout(points: list[PointState], rng: random.Random) -> list[tuple[float, StatusState, bool]]:
    """5,000 status changes over a minute: (seconds after START, status, opened by an activation)."""
    public = [p for p in points if p.visibility != "hidden"]
    chosen = rng.sample(public, CHANGES)
    changes = []
    for i, point in enumerate(chosen):
        at = MINUTE_S * i / CHANGES
        roll = rng.random()
        state, cause = (
            ("open", "activation") if roll < 0.8 else ("closed", "report") if roll < 0.9 else ("full", "report")
        )
        moment = START + timedelta(seconds=at)
        status = StatusState(
            point_id=point.id,
            version=2,
            state=OpenState(state),
            cause=StatusCause(cause),
            reported_at=moment,
            changed_at=moment,
            reported_by="bench",
        )
        changes.append((at, status, cause == "activation"))
    return changes


async def run_service(pool: asyncpg.Pool, changes: list[tuple[float, StatusState, bool]]) -> dict[str, float]:
    """Feed the changes through the handler, planner and flusher on simulated time; wall seconds of each step."""
    spent: dict[str, float] = defaultdict(float)
    collect_garbage_less_often()  # as the service's process does at start
    # The replica starts: its in-memory index of area subscriptions is loaded once (timed on its own).
    started = time.perf_counter()
    areas = AreaIndex()
    async with db.connection(pool) as conn:
        await areas.refresh(conn)
    spent["index"] = time.perf_counter() - started
    pending = list(changes)
    end = MINUTE_S + SETTINGS.alert_window_s + SETTINGS.alert_gather_s + 2
    for second in range(math.ceil(end) + 1):
        now = START + timedelta(seconds=second)
        started = time.perf_counter()
        while pending and pending[0][0] <= second:
            _, status, _ = pending.pop(0)
            data = Event(str(uuid.uuid4()), STATUS_CHANGED.type, "/bench", "", now, {}, status)
            await events.handle_alert_event(pool, data)
        spent["consume"] += time.perf_counter() - started
        started = time.perf_counter()
        steps = []
        if second % SETTINGS.alert_plan_interval_s == 0:
            steps.append(alerts.plan(pool, SETTINGS, now=now, areas=areas))
        if second % SETTINGS.alert_flush_interval_s == 0:
            steps.append(alerts.flush(pool, SETTINGS, now=now, areas=areas))
        await asyncio.gather(*steps)
        spent["plan and flush"] += time.perf_counter() - started
    started = time.perf_counter()
    await alerts.plan(pool, SETTINGS, now=START + timedelta(seconds=end + 60), areas=areas)
    await alerts.flush(pool, SETTINGS, now=START + timedelta(seconds=end + 60), areas=areas)
    spent["plan and flush"] += time.perf_counter() - started
    return dict(spent)


async def check_windows(pool: asyncpg.Pool) -> tuple[int, int, int, int]:
    """(messages, phones messaged, phones with two messages in one window, messages over one part)."""
    rows = await pool.fetch("SELECT phone_hash, dedup_key, parts FROM sms_messages WHERE kind = 'alert'")
    starts: dict[str, list[int]] = defaultdict(list)
    for r in rows:
        starts[r["phone_hash"]].append(int(r["dedup_key"].rsplit(":", 1)[1]))
    doubled = 0
    for phone_starts in starts.values():
        phone_starts.sort()
        if any(b - a < SETTINGS.alert_window_s for a, b in itertools.pairwise(phone_starts)):
            doubled += 1
    return len(rows), len(starts), doubled, sum(1 for r in rows if r["parts"] > 1)


async def baseline_s(pool: asyncpg.Pool, points: list[PointState], changes: list) -> float:
    """Seconds per event to find its area subscribers by scanning every subscription."""
    by_id = {p.id: p for p in points}
    sample = [c[1] for c in changes if c[1].state == "open"][:SAMPLE]
    started = time.perf_counter()
    for status in sample:
        point = by_id[status.point_id]
        await pool.fetch(
            """SELECT phone_hash FROM subscriptions s
               WHERE kind = 'area' AND s.services <@ $3::text[] AND 2 * 6371008.8 * asin(sqrt(
                   power(sin(radians($1 - s.lat) / 2), 2)
                   + cos(radians(s.lat)) * cos(radians($1)) * power(sin(radians($2 - s.lon) / 2), 2))) <= s.radius_m""",
            point.lat,
            point.lon,
            [s.value for s in point.services],
        )
    return (time.perf_counter() - started) / len(sample)


async def bench(database_url: str) -> None:
    """Load, run, check, compare; print the table."""
    rng = random.Random(11)
    name = f"benchnotify{secrets.token_hex(3)}"
    await db.ensure_database(database_url, name)
    url = db.database_url(database_url, name)
    await db.migrate(url, MIGRATIONS)
    pool = await db.create_pool(url, timeout_s=30, min_size=1, max_size=4)
    try:
        points = point_states()
        load_s = await load(pool, points, rng)
        changes = blackout(points, rng)
        spent = await run_service(pool, changes)
        sent, phones, doubled, multipart = await check_windows(pool)
        windows_left = await pool.fetchval("SELECT count(*) FROM alert_windows WHERE flushed_at IS NULL")
        per_event_s = await baseline_s(pool, points, changes)
    finally:
        await pool.close()
        conn = await asyncpg.connect(database_url)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()
    total = sum(v for k, v in spent.items() if k != "index")
    baseline_total = per_event_s * CHANGES
    table = Table(title=f"{SUBSCRIBERS:,} area subscribers, {CHANGES:,} points changing within a minute")
    table.add_column("what")
    table.add_column("value", justify="right")
    table.add_row("subscribers loaded (COPY + GIN index)", f"{load_s:.1f} s")
    table.add_row("area index loaded into memory (once, at start)", f"{spent.get('index', 0):.1f} s")
    for step in ("consume", "plan and flush"):
        table.add_row(f"  {step}", f"{spent.get(step, 0):.1f} s")
    table.add_row(
        "[bold]plan every notification (consume, plan and flush)[/]",
        f"[bold]{total:.1f} s[/] (target < {TARGET_S:.0f} s)",
    )
    table.add_row("messages queued / phones messaged", f"{sent:,} / {phones:,}")
    table.add_row("messages over one part", f"{multipart:,}")
    table.add_row("windows never flushed", f"{windows_left:,}")
    table.add_row("[bold]phones with two SMS in one window[/]", f"[bold]{doubled}[/]")
    table.add_row(
        f"baseline: scan every subscription per event ({SAMPLE} events timed, x{CHANGES:,} extrapolated)",
        f"{baseline_total:.1f} s ({per_event_s * 1000:.0f} ms/event, finding subscribers only)",
    )
    table.add_row("[bold]ratio baseline / ours[/]", f"[bold]{baseline_total / total:.1f}x[/]")
    Console().print(table)
    assert doubled == 0, f"{doubled} phones got two SMS in one window"


def main() -> None:
    """Run on POI_DATABASE_URL's server, or on an embedded PostgreSQL started for the run."""
    with tempfile.TemporaryDirectory(prefix="poi-bench-notify-") as root:
        infra = stack.start_infrastructure(
            Path(root),
            database_url=os.environ.get("POI_DATABASE_URL"),
            nats_url="nats://unused",  # only PostgreSQL is needed
            redis_url="redis://unused",
            ports={"postgres": embedded.free_port()},
            durable=False,
        )
        try:
            asyncio.run(bench(infra.database_url))
        finally:
            infra.stop()


if __name__ == "__main__":
    main()
