"""Webhook deliveries: 5,000 status events to 2 endpoints through notify, beside the same signed POSTs sent directly.

Notify runs as its own process (as `poi run` starts it) with loopback endpoints allowed; the receiver is a minimal
HTTP/1.1 server in this process that checks every signature. Measured: from the first status event published to
the last delivery received (consumer, delivery rows, claim, POST, record), and, as the baseline, the same number of
signed POSTs from one httpx client with notify's concurrency straight to the receiver (no broker, no database).

Settings: POI_DATABASE_URL, POI_NATS_URL, POI_REDIS_URL to use running servers (else embedded ones).
"""

import asyncio
import hashlib
import hmac
import os
import secrets
import time
import uuid
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path
from tempfile import TemporaryDirectory

import asyncpg
import httpx
import nats
from rich.console import Console
from rich.table import Table

from bench.status_pipeline import _drop_namespace
from poi_cli import embedded, stack
from poi_notify.webhooks.delivery import signature
from poi_shared.auth import issue_token
from poi_shared.contracts import (
    POINT_REGISTERED,
    STATUS_CHANGED,
    HostType,
    OpenState,
    PointCategory,
    PointState,
    Schedule,
    StatusState,
    Visibility,
)
from poi_shared.envelope import build_message

EVENTS, ENDPOINTS, CONCURRENCY = 5000, 2, 16
SECRET = "bench-secret-not-for-production-0123456789"
BOUND_S = 600.0


class Receiver:
    """Counts POSTs whose signature verifies, answering 204 on kept-alive connections."""

    def __init__(self, secrets_: set[str], expected: int) -> None:
        self.secrets, self.expected = secrets_, expected
        self.good = self.bad = 0
        self.done = asyncio.Event()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Serve one connection until the client closes it."""
        try:
            while head := await reader.readuntil(b"\r\n\r\n"):
                headers = dict(line.split(":", 1) for line in head.decode("latin-1").split("\r\n")[1:] if ":" in line)
                headers = {k.strip().lower(): v.strip() for k, v in headers.items()}
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                signed = headers.get("webhook-timestamp", "").encode() + b"." + body
                ok = any(
                    hmac.compare_digest(
                        "v1=" + hmac.new(s.encode(), signed, hashlib.sha256).hexdigest(),
                        headers.get("webhook-signature", ""),
                    )
                    for s in self.secrets
                )
                self.good, self.bad = self.good + ok, self.bad + (not ok)
                if self.good >= self.expected:
                    self.done.set()
                writer.write(b"HTTP/1.1 204 No Content\r\ncontent-length: 0\r\n\r\n")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


def _point(n: int) -> PointState:
    return PointState(
        id=uuid.uuid4(),
        code=f"B-{n:06d}",
        version=1,
        name_uk=f"Пункт {n}",
        category=PointCategory.state,
        host_type=HostType.school,
        lat=50.0 + n % 100 / 100,
        lon=30.0 + n // 100 / 100,
        address_uk="вул. Тестова, 1",
        settlement="Київ",
        katotth="UA80000000000093317",
        capacity=100,
        services=[],
        schedule=Schedule(),
        visibility=Visibility.public,
        updated_at=datetime.now(UTC),
    )


async def _publish(nats_url: str, namespace: str, messages: list) -> None:
    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()  # the streams are notify's: it made them at start
        acks = [js.publish(m.subject, m.body, headers=m.headers) for m in messages]
        for start in range(0, len(acks), 500):
            await asyncio.gather(*acks[start : start + 500])
    finally:
        await nc.close()


async def _wait_points(database_url: str, count: int) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        deadline = time.monotonic() + BOUND_S
        while await conn.fetchval("SELECT count(*) FROM webhook_points") < count:
            assert time.monotonic() < deadline, "notify did not learn the points"
            await asyncio.sleep(0.2)
    finally:
        await conn.close()


async def through_notify(infra: stack.Infrastructure, namespace: str, urls: dict[str, str], notify: str) -> dict:
    """Register the endpoints, publish the events, time until every delivery has arrived signed."""
    points = [_point(n) for n in range(EVENTS)]
    await _publish(
        infra.nats_url,
        namespace,
        [
            build_message(namespace=namespace, event_type=POINT_REGISTERED, key=str(p.id), data=p, source="/bench")
            for p in points
        ],
    )
    await _wait_points(urls["notify"], EVENTS)
    token = issue_token(SECRET, subject="bench-integrator", roles=["integrator"])
    receiver = Receiver(set(), EVENTS * ENDPOINTS)
    server = await asyncio.start_server(receiver.handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with httpx.AsyncClient(base_url=notify, headers={"Authorization": f"Bearer {token}"}) as client:
        for _ in range(ENDPOINTS):
            body = {"url": f"http://127.0.0.1:{port}/hook", "event_types": [STATUS_CHANGED.type]}
            response = await client.post("/v1/webhooks", json=body)
            assert response.status_code == 201, response.text
            receiver.secrets.add(response.json()["secret"])
    now = datetime.now(UTC)
    statuses = [
        build_message(
            namespace=namespace,
            event_type=STATUS_CHANGED,
            key=str(p.id),
            data=StatusState(
                point_id=p.id, version=1, state=OpenState.open, reported_at=now, changed_at=now, reported_by="bench"
            ),
            source="/bench",
        )
        for p in points
    ]
    started = time.perf_counter()
    await _publish(infra.nats_url, namespace, statuses)
    published = time.perf_counter() - started
    queued = await _queued(urls["notify"], EVENTS * ENDPOINTS) - started
    await asyncio.wait_for(receiver.done.wait(), BOUND_S)
    elapsed = time.perf_counter() - started
    server.close()
    return {"elapsed": elapsed, "published": published, "queued": queued, "good": receiver.good, "bad": receiver.bad}


async def _queued(database_url: str, count: int) -> float:
    """When the consumer had written every delivery row (perf_counter), polled every 50 ms."""
    conn = await asyncpg.connect(database_url)
    try:
        deadline = time.monotonic() + BOUND_S
        while await conn.fetchval("SELECT count(*) FROM webhook_deliveries") < count:
            assert time.monotonic() < deadline, "notify did not queue every delivery"
            await asyncio.sleep(0.05)
        return time.perf_counter()
    finally:
        await conn.close()


async def direct() -> dict:
    """The same number of signed POSTs straight from one client with notify's concurrency."""
    secret = "whsec_" + secrets.token_urlsafe(32)
    receiver = Receiver({secret}, EVENTS * ENDPOINTS)
    server = await asyncio.start_server(receiver.handle, "127.0.0.1", 0)
    url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/hook"
    body = b'{"specversion":"1.0","data":{"state":"open"}}' * 8
    limit = asyncio.Semaphore(CONCURRENCY)
    started = time.perf_counter()
    async with httpx.AsyncClient(limits=httpx.Limits(max_connections=CONCURRENCY * 2)) as client:

        async def one(n: int) -> None:
            async with limit:
                ts = int(time.time())
                headers = {
                    "webhook-id": str(n),
                    "webhook-timestamp": str(ts),
                    "webhook-signature": signature(secret, ts, body),
                }
                await client.post(url, content=body, headers=headers)

        await asyncio.gather(*(one(n) for n in range(EVENTS * ENDPOINTS)))
    elapsed = time.perf_counter() - started
    server.close()
    return {"elapsed": elapsed, "good": receiver.good, "bad": receiver.bad}


def main() -> None:
    """Run both and print deliveries per second and their ratio."""
    console = Console()
    with ExitStack() as cleanup, TemporaryDirectory(prefix="bench-webhooks-") as tmp:
        infra = stack.start_infrastructure(
            Path(tmp),
            database_url=os.environ.get("POI_DATABASE_URL"),
            nats_url=os.environ.get("POI_NATS_URL"),
            redis_url=os.environ.get("POI_REDIS_URL"),
            ports={name: embedded.free_port() for name in stack.EMBEDDED_PORTS},
            durable=False,
        )
        cleanup.callback(infra.stop)
        namespace = f"b{secrets.token_hex(4)}"
        cleanup.callback(lambda: asyncio.run(_drop_namespace(infra, namespace)))
        urls = asyncio.run(stack.prepare_databases(infra.database_url, namespace))
        port = embedded.free_port()
        env = stack.service_env("notify", infra, urls, namespace=namespace, secret=SECRET)
        env["POI_NOTIFY_WEBHOOK_ALLOW_LOOPBACK_HTTP"] = "true"
        process = stack.start_service("notify", port, env, Path(tmp) / "notify.log")
        cleanup.callback(stack.stop_services, {"notify": process})
        stack.wait_ready({"notify": port}, {"notify": process}, timeout_s=90)
        notified = asyncio.run(through_notify(infra, namespace, urls, f"http://127.0.0.1:{port}"))
    baseline = asyncio.run(direct())
    total = EVENTS * ENDPOINTS
    table = Table(title=f"{EVENTS:,} status events x {ENDPOINTS} endpoints = {total:,} signed deliveries")
    for column in ("path", "seconds", "deliveries/s", "signatures ok", "bad"):
        table.add_column(column, justify="right" if column != "path" else "left")
    table.add_row(
        "through notify (broker, inbox, rows, POST, record)",
        f"{notified['elapsed']:.2f}",
        f"{total / notified['elapsed']:,.0f}",
        f"{notified['good']:,}",
        str(notified["bad"]),
    )
    table.add_row(
        f"baseline: direct POSTs, {CONCURRENCY} in flight",
        f"{baseline['elapsed']:.2f}",
        f"{total / baseline['elapsed']:,.0f}",
        f"{baseline['good']:,}",
        str(baseline["bad"]),
    )
    console.print(table)
    console.print(
        f"notify delivers at {baseline['elapsed'] / notified['elapsed']:.2f}x the direct rate "
        f"(events published in {notified['published']:.2f}s; every delivery queued by the consumer after "
        f"{notified['queued']:.2f}s: {EVENTS / notified['queued']:,.0f} status events/s)"
    )
