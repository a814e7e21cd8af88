"""The sender against real PostgreSQL: each message sent at most once, busy gateways retried later, refusals
failed, STOP honoured up to the moment of sending, and what a dead sender held marked unknown, never resent.

The gateway here is a stand-in Provider (Kannel itself is in test_kannel_sms.py): what it does is the point.
"""

import uuid
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest
from prometheus_client import Counter

from poi_notify import data
from poi_notify.settings import NotifySettings
from poi_notify.sms import service as sms
from poi_notify.sms.providers import OutgoingSms, PermanentFailure, TemporaryFailure
from poi_notify.sms.sender import SmsCounters, TokenBucket, abandon_stale, send_batch
from tests.integration.notify.conftest import add_number, counters

pytestmark = pytest.mark.integration


class Gateway:
    """Records what it is given; answers as told."""

    name = "test"

    def __init__(self, failure: Exception | None = None) -> None:
        self.failure = failure
        self.sent: list[OutgoingSms] = []

    async def send(self, message: OutgoingSms) -> str:
        if self.failure is not None:
            raise self.failure
        self.sent.append(message)
        return f"gw-{message.id}"

    async def aclose(self) -> None:
        return None


def settings(**changes: object) -> NotifySettings:
    return NotifySettings(phone_key="test-phone-key", sms_rate_per_s=1000, **changes)  # type: ignore[arg-type]


async def queue(pool: asyncpg.Pool, hashed: str, body: str, *, kind: str = "alert") -> uuid.UUID:
    async with pool.acquire() as conn, conn.transaction():
        id = await sms.enqueue(conn, phone_hash=hashed, kind=kind, body=body, dedup_key=f"{hashed}:{body}")
    assert id is not None
    return id


async def states(pool: asyncpg.Pool, hashed: str) -> list[asyncpg.Record]:
    return await data.sms_of_phone(pool, hashed)


def total(counter: Counter, provider: str) -> float:
    """What a counter shows for the provider on /metrics (its _total sample; 0 if never counted)."""
    samples = [s for m in counter.collect() for s in m.samples if s.name.endswith("_total")]
    return next((s.value for s in samples if s.labels == {"provider": provider}), 0.0)


async def batch(
    pool: asyncpg.Pool,
    gateway: Gateway,
    config: NotifySettings,
    claimer: uuid.UUID | None = None,
    counted: SmsCounters | None = None,
) -> int:
    bucket = TokenBucket(config.sms_rate_per_s, burst=config.sms_rate_per_s)
    counted = counted or counters()
    return await send_batch(pool, gateway, config, claimer=claimer or uuid.uuid4(), bucket=bucket, counters=counted)


async def test_each_message_is_sent_once_and_recorded(notify_db: asyncpg.Pool) -> None:
    hashed = await add_number(notify_db, "+380671110001")
    bodies = ["Пункт відкрито", "Point open", "Пункт зачинено"]
    for body in bodies:
        await queue(notify_db, hashed, body)
    gateway = Gateway()
    assert await batch(notify_db, gateway, settings()) == 3
    assert sorted(m.body for m in gateway.sent) == sorted(bodies)
    assert {m.e164 for m in gateway.sent} == {"+380671110001"}
    rows = await states(notify_db, hashed)
    assert {(r["state"], r["attempts"], r["provider_id"]) for r in rows} == {("sent", 1, f"gw-{r['id']}") for r in rows}
    assert await batch(notify_db, gateway, settings()) == 0 and len(gateway.sent) == 3


async def test_a_busy_gateway_gets_the_message_again_later_then_gives_up(notify_db: asyncpg.Pool) -> None:
    hashed = await add_number(notify_db, "+380671110002")
    await queue(notify_db, hashed, "Пункт відкрито")
    config = settings(sms_max_attempts=2, sms_retry_initial_s=60)
    busy = Gateway(TemporaryFailure("gateway answered 503: queue full"))
    assert await batch(notify_db, busy, config) == 1
    (row,) = await states(notify_db, hashed)
    assert (row["state"], row["attempts"], row["last_error"]) == ("queued", 1, "gateway answered 503: queue full")
    # Not due before its backoff has passed.
    assert await batch(notify_db, busy, config) == 0
    async with notify_db.acquire() as conn:
        await conn.execute("UPDATE sms_messages SET not_before = now() WHERE phone_hash = $1", hashed)
    assert await batch(notify_db, busy, config) == 1
    (row,) = await states(notify_db, hashed)
    assert (row["state"], row["attempts"]) == ("failed", 2)


async def test_a_refused_message_fails_for_good(notify_db: asyncpg.Pool) -> None:
    hashed = await add_number(notify_db, "+380671110003")
    await queue(notify_db, hashed, "Пункт відкрито")
    counted = counters()
    refusing = Gateway(PermanentFailure("gateway answered 403: Authorization failed"))
    assert await batch(notify_db, refusing, settings(), counted=counted)
    (row,) = await states(notify_db, hashed)
    assert row["state"] == "failed" and "403" in row["last_error"]
    # /metrics: poi_sms_failed_total moves, by provider; nothing was counted as sent.
    assert total(counted.failed, "test") == 1 and total(counted.sent, "test") == 0


async def test_stop_arriving_after_queueing_wins_up_to_the_send(notify_db: asyncpg.Pool) -> None:
    hashed = await add_number(notify_db, "+380671110004")
    await queue(notify_db, hashed, "Пункт відкрито")
    # As if STOP reached another replica just now: the number is stopped but the message is still queued.
    async with notify_db.acquire() as conn:
        await conn.execute("UPDATE phones SET stopped_at = now() WHERE phone_hash = $1", hashed)
    gateway = Gateway()
    assert await batch(notify_db, gateway, settings()) == 1
    assert gateway.sent == []
    (row,) = await states(notify_db, hashed)
    assert (row["state"], row["last_error"]) == ("cancelled", "STOP")


async def test_what_a_dead_sender_held_becomes_unknown_and_is_never_resent(notify_db: asyncpg.Pool) -> None:
    hashed = await add_number(notify_db, "+380671110005")
    await queue(notify_db, hashed, "Пункт відкрито")
    dead = uuid.uuid4()
    assert len(await data.claim_due_sms(notify_db, claimer=dead, limit=10)) == 1
    config = settings(sms_sending_lease_s=60)
    await abandon_stale(notify_db, config)  # a live claim (just now) is left alone
    assert (await states(notify_db, hashed))[0]["state"] == "sending"
    async with notify_db.acquire() as conn:
        await conn.execute(
            "UPDATE sms_messages SET claimed_at = $2 WHERE phone_hash = $1",
            hashed,
            datetime.now(UTC) - timedelta(minutes=5),
        )
    await abandon_stale(notify_db, config)
    (row,) = await states(notify_db, hashed)
    assert row["state"] == "unknown"
    gateway = Gateway()
    assert await batch(notify_db, gateway, config) == 0 and gateway.sent == []


async def test_unconfirmed_numbers_only_get_codes_and_replies(notify_db: asyncpg.Pool) -> None:
    hashed = await add_number(notify_db, "+380671110006", confirmed=False)
    async with notify_db.acquire() as conn, conn.transaction():
        alert = await sms.enqueue(conn, phone_hash=hashed, kind="alert", body="Пункт відкрито", dedup_key="a")
    assert alert is None
    await queue(notify_db, hashed, "Код 123456", kind="confirmation")
    gateway = Gateway()
    assert await batch(notify_db, gateway, settings()) == 1 and [m.body for m in gateway.sent] == ["Код 123456"]
