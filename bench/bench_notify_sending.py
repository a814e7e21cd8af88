"""SMS sending: 20,000 queued SMS through notify's sender to Kannel and its fakesmsc, delivery reports on, beside
Kannel alone taking the same messages straight to its sendsms interface.

Notify runs as its own process (as `poi run` starts it) on the PostgreSQL of POI_DATABASE_URL or an embedded one;
Kannel (bearerbox, smsbox, fakesmsc) on loopback. Both runs ask for every delivery report (dlr-mask 31) and both
send the reports to notify, which records them. Target: at least 1,000 SMS/s end to end through notify.

Settings: BENCH_SMS (20,000), BENCH_SMS_CONCURRENCY (32: Kannel alone's connections, and notify's sms_concurrency
unless BENCH_NOTIFY_CONCURRENCY says otherwise), BENCH_NOTIFY_WORKERS (2), BENCH_SMS_DLR_MASK (31).
"""

import asyncio
import os
import secrets
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from urllib.parse import quote, urlencode

import aiohttp
import asyncpg
import yarl
from pydantic import SecretStr
from rich.console import Console
from rich.table import Table

from poi_cli import embedded, stack
from poi_notify.app import MIGRATIONS
from poi_notify.phones.service import phone_hash
from poi_shared import db
from tests.support import kannel

MESSAGES = int(os.environ.get("BENCH_SMS", "20000"))
TARGET_PER_S = 1000.0
CONCURRENCY = int(os.environ.get("BENCH_SMS_CONCURRENCY", "32"))
BODY = "Відкрито пункт незламності: вул. Хрещатик, 1. Тепло, зарядка, вода"
SECRET = "bench-secret-not-for-production-0123456789"
BOUND_S = float(os.environ.get("BENCH_SMS_BOUND_S", "400"))
# Kannel gives up on a report whose callback fails (it does not retry): wait this long after the last one, no more.
REPORTS_BOUND_S = 60.0
DLR_MASK = os.environ.get("BENCH_SMS_DLR_MASK", "31")
# Notify's processes: in production its replicas share Kannel's delivery reports (2 per message) and the sending.
WORKERS = int(os.environ.get("BENCH_NOTIFY_WORKERS", "2"))


def numbers(first: int, count: int) -> list[str]:
    """count distinct Ukrainian mobile numbers."""
    return [f"+38067{n:07d}" for n in range(first, first + count)]


async def queue_messages(
    url: str, key: SecretStr, e164s: list[str], *, run: str, state: str = "queued"
) -> list[uuid.UUID]:
    """Confirmed numbers and one alert each, committed at once (as a burst of alerts would be); their ids."""
    conn = await asyncpg.connect(url)
    try:
        hashes = [phone_hash(key, e164) for e164 in e164s]
        ids = [uuid.uuid4() for _ in e164s]
        async with conn.transaction():
            await conn.copy_records_to_table(
                "phones",
                records=[(h, e, "uk", False) for h, e in zip(hashes, e164s, strict=True)],
                columns=["phone_hash", "e164", "language", "latin"],
            )
            await conn.execute("UPDATE phones SET confirmed_at = now()")
            await conn.copy_records_to_table(
                "sms_messages",
                records=[(i, f"{run}:{h}", h, "alert", BODY, 1, state) for i, h in zip(ids, hashes, strict=True)],
                columns=["id", "dedup_key", "phone_hash", "kind", "body", "parts", "state"],
            )
    finally:
        await conn.close()
    return ids


async def drop_database(server_url: str, name: str) -> None:
    conn = await asyncpg.connect(server_url)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


async def counts(url: str) -> dict[str, int]:
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch("SELECT state, count(*) AS n FROM sms_messages GROUP BY state")
        dlr = await conn.fetchval("SELECT count(*) FROM sms_messages WHERE dlr_type IS NOT NULL")
    finally:
        await conn.close()
    return {**{r["state"]: r["n"] for r in rows}, "with_dlr": dlr}


async def kannel_alone(gateway: kannel.Kannel, notify_port: int, messages: list[tuple[uuid.UUID, str]]) -> float:
    """The same messages straight to sendsms, CONCURRENCY at a time, with the same client library notify uses
    (aiohttp), reports to notify, which records them against rows made for them beforehand; seconds."""
    pending = iter(messages)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=CONCURRENCY)) as session:

        async def worker() -> None:
            for id, e164 in pending:
                dlr = f"http://127.0.0.1:{notify_port}/v1/sms/dlr?" + urlencode({"id": str(id)}) + "&type=%d"
                params = {
                    "username": kannel.LOGIN[0],
                    "password": kannel.LOGIN[1],
                    "from": "POI",
                    "to": e164,
                    "text": BODY,
                    "charset": "UTF-8",
                    "coding": "2",
                }
                if DLR_MASK != "0":
                    params["dlr-mask"], params["dlr-url"] = DLR_MASK, dlr
                url = yarl.URL(f"{gateway.sendsms_url}?{urlencode(params, quote_via=quote)}", encoded=True)
                async with session.get(url) as answer:
                    answer.raise_for_status()

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
        return time.perf_counter() - started


async def through_notify(url: str, key: SecretStr, gateway: kannel.Kannel, e164s: list[str]) -> dict[str, float]:
    """Queue every message at once; time until notify has sent them all, and until the SMSC has them all."""
    at_smsc_before = gateway.received_count()
    started = time.perf_counter()
    await queue_messages(url, key, e164s, run="notify")
    queued_s = time.perf_counter() - started
    sent_s = smsc_s = None
    deadline = started + BOUND_S
    conn = await asyncpg.connect(url)  # one connection for the polling: the server may be shared
    try:
        while time.perf_counter() < deadline and (sent_s is None or smsc_s is None):
            await asyncio.sleep(0.1)
            now = time.perf_counter() - started
            if sent_s is None:
                done = await conn.fetchval("SELECT count(*) FROM sms_messages WHERE state IN ('sent', 'delivered')")
                if done >= len(e164s):
                    sent_s = now
            if smsc_s is None and gateway.received_count() - at_smsc_before >= len(e164s):
                smsc_s = now
    finally:
        await conn.close()
    if sent_s is None or smsc_s is None:
        raise TimeoutError(f"not all sent within {BOUND_S:.0f} s: {await counts(url)}")
    return {"queued_s": queued_s, "sent_s": sent_s, "smsc_s": smsc_s}


async def delivered(url: str, run: str) -> int:
    """The run's messages whose final delivery report notify has recorded."""
    conn = await asyncpg.connect(url)
    try:
        return await conn.fetchval(
            "SELECT count(*) FROM sms_messages WHERE dlr_type = 1 AND dedup_key LIKE $1", f"{run}:%"
        )
    finally:
        await conn.close()


def wait_for_reports(url: str, run: str, started: float) -> float:
    """Seconds from started until every message of the run has its final report recorded (or the bound)."""
    if DLR_MASK == "0":
        return float("nan")
    last, last_at = -1, time.perf_counter()
    while (count := asyncio.run(delivered(url, run))) < MESSAGES and time.perf_counter() - last_at < REPORTS_BOUND_S:
        if count != last:
            last, last_at = count, time.perf_counter()
        time.sleep(0.2)
    return (last_at if count < MESSAGES else time.perf_counter()) - started


def start_notify(port: int, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """Notify under uvicorn with WORKERS processes on one port: each sends, all take delivery reports."""
    argv = [sys.executable, "-m", "uvicorn", "poi_notify.app:create_app", "--factory", "--host", "127.0.0.1"]
    argv += ["--port", str(port), "--no-access-log", "--workers", str(WORKERS), *stack.SERVER_OPTIONS["notify"]]
    with log.open("ab") as out:
        return subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def main() -> None:
    """Start PostgreSQL (or use POI_DATABASE_URL), Kannel and notify; measure both ways; print the comparison."""
    console = Console()
    if not kannel.installed():
        console.print(f"[yellow]bench_notify_sending skipped: {kannel.NOT_INSTALLED}[/]")
        return
    with tempfile.TemporaryDirectory(prefix="poi-bench-sms-") as tmp_name:
        tmp = Path(tmp_name)
        infra = stack.start_infrastructure(
            tmp / "servers",
            database_url=os.environ.get("POI_DATABASE_URL"),
            nats_url=os.environ.get("POI_NATS_URL"),
            redis_url=os.environ.get("POI_REDIS_URL"),
            ports={name: embedded.free_port() for name in stack.EMBEDDED_PORTS},
            durable=False,
        )
        namespace = f"b{secrets.token_hex(4)}"
        name = f"{namespace}_notify"
        asyncio.run(db.ensure_database(infra.database_url, name))
        url = db.database_url(infra.database_url, name)
        asyncio.run(db.migrate(url, MIGRATIONS))
        port = embedded.free_port()
        process = None
        try:
            with kannel.kannel(tmp / "kannel", log_level=2) as gateway:
                env = stack.service_env("notify", infra, {"notify": url}, namespace=namespace, secret=SECRET)
                env.update(
                    {
                        "POI_NOTIFY_LOG_LEVEL": "WARNING",
                        "POI_NOTIFY_KANNEL_URL": gateway.sendsms_url.removesuffix("/cgi-bin/sendsms"),
                        "POI_NOTIFY_KANNEL_USERNAME": kannel.LOGIN[0],
                        "POI_NOTIFY_KANNEL_PASSWORD": kannel.LOGIN[1],
                        "POI_NOTIFY_GATEWAY_CALLBACK_URL": f"http://127.0.0.1:{port}",
                        "POI_NOTIFY_SMS_RATE_PER_S": os.environ.get("BENCH_SMS_RATE", "100000"),
                        "POI_NOTIFY_SMS_CONCURRENCY": os.environ.get("BENCH_NOTIFY_CONCURRENCY", str(CONCURRENCY)),
                        "POI_NOTIFY_SMS_BATCH": "1000",
                        "POI_NOTIFY_DB_POOL_MAX": "20",
                        "POI_NOTIFY_SMS_DLR_MASK": DLR_MASK,
                    }
                )
                key = SecretStr(env["POI_NOTIFY_PHONE_KEY"])
                process = start_notify(port, env, tmp / "notify.log")
                stack.wait_ready({"notify": port}, {"notify": process}, 90)
                console.print(f"through notify ({WORKERS} processes): {MESSAGES:,} SMS queued at once …")
                started = time.perf_counter()
                notify = asyncio.run(through_notify(url, key, gateway, numbers(MESSAGES, MESSAGES)))
                # Two reports a message (8: accepted by the SMSC, 1: delivered); let them drain before the next run.
                notify["dlr_s"] = wait_for_reports(url, "notify", started)
                final = asyncio.run(counts(url))
                alone = numbers(0, MESSAGES)
                ids = asyncio.run(queue_messages(url, key, alone, run="alone", state="sent"))
                console.print(f"Kannel alone: {MESSAGES:,} SMS straight to sendsms, {CONCURRENCY} connections …")
                started = time.perf_counter()
                alone_s = asyncio.run(kannel_alone(gateway, port, list(zip(ids, alone, strict=True))))
                alone_dlr_s = wait_for_reports(url, "alone", started)
        except Exception:
            console.print((tmp / "notify.log").read_text(errors="replace")[-3000:])
            raise
        finally:
            if process is not None:
                stack.stop_services({"notify": process})
            asyncio.run(drop_database(infra.database_url, name))
            infra.stop()
    report(console, alone_s, alone_dlr_s, notify, final)


def report(
    console: Console, alone_s: float, alone_dlr_s: float, notify: dict[str, float], final: dict[str, int]
) -> None:
    """Both rates, the ratio and the target."""
    alone_rate = MESSAGES / alone_s
    sent_rate, smsc_rate = MESSAGES / notify["sent_s"], MESSAGES / notify["smsc_s"]
    table = Table(title=f"{MESSAGES:,} SMS, dlr-mask {DLR_MASK}, {CONCURRENCY} connections to sendsms")
    for column in ("path", "seconds", "SMS/s"):
        table.add_column(column, justify="left" if column == "path" else "right")
    table.add_row("Kannel alone (accepted by sendsms)", f"{alone_s:.1f}", f"{alone_rate:,.0f}")
    table.add_row("through notify (accepted by Kannel)", f"{notify['sent_s']:.1f}", f"{sent_rate:,.0f}")
    table.add_row("through notify (at the SMSC)", f"{notify['smsc_s']:.1f}", f"{smsc_rate:,.0f}")
    table.add_row(
        "Kannel alone, until notify recorded each report", f"{alone_dlr_s:.1f}", f"{MESSAGES / alone_dlr_s:,.0f}"
    )
    table.add_row(
        "through notify, until notify recorded each report",
        f"{notify['dlr_s']:.1f}",
        f"{MESSAGES / notify['dlr_s']:,.0f}",
    )
    console.print(table)
    console.print(
        f"queueing {MESSAGES:,} rows took {notify['queued_s']:.2f} s; notify's messages by state: {final} "
        "(a report row: the last one recorded; fewer than sent means Kannel failed to deliver some callbacks); "
        f"notify / Kannel alone = {smsc_rate / alone_rate:.2f}"
    )
    verdict = "PASS" if smsc_rate >= TARGET_PER_S else "FAIL"
    console.print(f"target ≥ {TARGET_PER_S:,.0f} SMS/s end to end through notify: {smsc_rate:,.0f} → {verdict}")
