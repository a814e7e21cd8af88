"""The sender: drains the sms_messages outbox through the gateway, at most once per message, at the gateway's pace."""

import asyncio
import contextlib
import logging
import math
import random
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from uuid import UUID

import asyncpg
from opentelemetry import trace
from prometheus_client import Counter

from poi_notify import data
from poi_notify.phones.service import mask
from poi_notify.settings import NotifySettings
from poi_notify.sms.providers import OutgoingSms, PermanentFailure, Provider, TemporaryFailure
from poi_shared.errors import DEPENDENCY_ERRORS
from poi_shared.telemetry import context_of, exporters

log = logging.getLogger(__name__)
tracer = trace.get_tracer(__name__)


@dataclass(frozen=True)
class SmsCounters:
    """What the sender counts for Prometheus."""

    sent: Counter
    failed: Counter
    throttled: Counter


class TokenBucket:
    """At most rate_per_s takes per second on average, bursts up to `burst`."""

    def __init__(self, rate_per_s: float, burst: float) -> None:
        self.rate_per_s = rate_per_s
        self.burst = burst
        self._tokens = burst
        self._at = time.monotonic()
        self._lock = asyncio.Lock()

    async def take(self) -> None:
        """Wait for a token."""
        async with self._lock:
            while True:
                now = time.monotonic()
                self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate_per_s)
                self._at = now
                if self._tokens >= 1:
                    self._tokens -= 1
                    return
                await asyncio.sleep((1 - self._tokens) / self.rate_per_s)


def backoff_s(attempts: int, settings: NotifySettings) -> float:
    """How long a message waits after its attempts-th try failed for now: exponential, capped, jittered."""
    delay = min(settings.sms_retry_initial_s * 2 ** max(attempts - 1, 0), settings.sms_retry_max_s)
    return delay * random.uniform(0.8, 1.2)


async def send_batch(
    pool: asyncpg.Pool,
    provider: Provider,
    settings: NotifySettings,
    *,
    claimer: UUID,
    bucket: TokenBucket,
    counters: SmsCounters,
    exporting: bool = True,
) -> int:
    """Claim the due messages (committed as 'sending' first), send them, record each outcome; how many were claimed."""
    # About a second's worth at the gateway's rate: a STOP after a message was queued cancels it when claimed, so
    # the STOP checked is at most that old when a message goes.
    limit = min(settings.sms_batch, max(1, math.ceil(settings.sms_rate_per_s)))
    claimed = await data.claim_due_sms(pool, claimer=claimer, limit=limit)
    if not claimed:
        return 0
    sent: list[tuple[UUID, str]] = []
    failed: list[tuple[UUID, str]] = []
    retries: list[tuple[UUID, str, float]] = []
    in_flight = asyncio.Semaphore(settings.sms_concurrency)

    async def one(row: asyncpg.Record) -> None:
        message = OutgoingSms(id=row["id"], e164=row["e164"], body=row["body"])
        async with in_flight:
            await bucket.take()
            # A child of what queued the message (an operator's report, a subscriber's request), when it was traced.
            # Otherwise, with nothing exported, a span would only cost (a tenth of the sender's time).
            with (
                tracer.start_as_current_span(
                    f"send sms {row['kind']}",
                    context=context_of(row["traceparent"]),
                    kind=trace.SpanKind.PRODUCER,
                    attributes={"sms.provider": provider.name, "sms.attempt": row["attempts"]},
                )
                if exporting or row["traceparent"] is not None
                else contextlib.nullcontext()
            ):
                try:
                    sent.append((message.id, await provider.send(message)))
                except TemporaryFailure as exc:
                    retries.append((message.id, str(exc), backoff_s(row["attempts"], settings)))
                except PermanentFailure as exc:
                    log.warning("SMS %s to %s refused: %s", message.id, mask(message.e164), exc)
                    failed.append((message.id, str(exc)))

    await asyncio.gather(*(one(row) for row in claimed if row["state"] == "sending"))
    if sent:
        await _recorded(lambda: data.mark_sent(pool, claimer=claimer, sent=sent))
        counters.sent.labels(provider.name).inc(len(sent))
    if failed:
        await _recorded(lambda: data.mark_failed(pool, claimer=claimer, failed=failed))
        counters.failed.labels(provider.name).inc(len(failed))
    if retries:
        await _recorded(
            lambda: data.requeue(pool, claimer=claimer, retries=retries, max_attempts=settings.sms_max_attempts)
        )
        counters.throttled.labels(provider.name).inc(len(retries))
        log.warning("gateway busy or unreachable: %d SMS queued again (%s)", len(retries), retries[0][1])
    return len(claimed)


async def _recorded(write: Callable[[], Awaitable[None]]) -> None:
    """Record what the gateway did, retrying while the database does not answer: the messages are gone already."""
    delay = 0.1
    while True:
        try:
            await write()
            return
        except DEPENDENCY_ERRORS as exc:
            log.warning("recording sent SMS failed, retrying in %.1fs: %r", delay, exc)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)


async def run_sender(
    pool: asyncpg.Pool,
    provider: Provider,
    settings: NotifySettings,
    *,
    counters: SmsCounters,
    stop: asyncio.Event,
) -> None:
    """Send until stopped; idle, look for due messages every sms_idle_poll_s."""
    claimer = uuid.uuid4()
    exporting = bool(exporters())
    bucket = TokenBucket(settings.sms_rate_per_s, burst=max(1.0, min(settings.sms_rate_per_s, settings.sms_batch)))
    while not stop.is_set():
        if await send_batch(
            pool, provider, settings, claimer=claimer, bucket=bucket, counters=counters, exporting=exporting
        ):
            continue
        try:
            await asyncio.wait_for(stop.wait(), settings.sms_idle_poll_s)
        except TimeoutError:
            pass


async def abandon_stale(pool: asyncpg.Pool, settings: NotifySettings) -> None:
    """Mark messages a dead sender left in 'sending' as 'unknown': they may have gone out, so never again."""
    count = await data.abandon_stale_sending(pool, older_than_s=settings.sms_sending_lease_s)
    if count:
        log.warning("%d SMS were being sent when a sender stopped: marked unknown, not sent again", count)
