"""NATS JetStream: connecting, stream provisioning and the durable pull-consumer runner."""

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass

import nats
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.js import JetStreamContext, api
from nats.js.errors import BadRequestError, NotFoundError
from opentelemetry import propagate, trace
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_delay, wait_exponential

from poi_shared.contracts import DEAD_LETTERS, STREAMS, StreamSpec
from poi_shared.envelope import Event, PoisonMessage, parse_message
from poi_shared.errors import DEPENDENCY_ERRORS

log = logging.getLogger(__name__)
tracer = trace.get_tracer("poi_shared.jetstream")

Handler = Callable[[Event], Awaitable[None]]
# Handles a fetch's events together, in order, committing their work at once (e.g. one transaction with their
# inbox rows); when it raises, nothing of it may have been committed, and the events are handled one at a time.
BatchHandler = Callable[[Sequence[Event]], Awaitable[None]]
DUPLICATE_WINDOW_S = 120.0

# Headers a dead letter carries besides the original ones.
DEAD_CONSUMER = "Poi-Dead-Consumer"
DEAD_REASON = "Poi-Dead-Reason"
DEAD_SUBJECT = "Poi-Dead-Subject"
# A replayed dead letter carries the subject it was first published on.
ORIGINAL_SUBJECT = "Poi-Original-Subject"


async def connect(url: str, *, name: str, timeout_s: float) -> NATS:
    """Connect, retrying until the server answers or the startup timeout passes."""
    async for attempt in AsyncRetrying(
        stop=stop_after_delay(timeout_s),
        wait=wait_exponential(multiplier=0.2, max=3),
        retry=retry_if_exception_type((OSError, nats.errors.Error, asyncio.TimeoutError)),
        reraise=True,
    ):
        with attempt:
            return await nats.connect(
                url,
                name=name,
                connect_timeout=2,
                allow_reconnect=True,
                max_reconnect_attempts=-1,
                reconnect_time_wait=1,
            )
    raise AssertionError("unreachable")


def stream_config(spec: StreamSpec, namespace: str, *, replicas: int = 1) -> api.StreamConfig:
    """The server-side configuration of one stream of the contract."""
    return api.StreamConfig(
        name=spec.stream_name(namespace),
        description=spec.description,
        subjects=[spec.wildcard(namespace)],
        retention=api.RetentionPolicy.WORK_QUEUE if spec.work_queue else api.RetentionPolicy.LIMITS,
        storage=api.StorageType.FILE,
        max_msgs_per_subject=spec.max_msgs_per_subject,
        max_age=spec.max_age_s,
        max_bytes=spec.max_bytes,
        discard=api.DiscardPolicy.OLD,
        duplicate_window=DUPLICATE_WINDOW_S,
        num_replicas=replicas,
    )


async def ensure_streams(js: JetStreamContext, namespace: str, *, replicas: int = 1) -> None:
    """Create or update every stream of the contract; safe to run from every replica."""
    for spec in STREAMS:
        config = stream_config(spec, namespace, replicas=replicas)
        try:
            await js.add_stream(config)
        except BadRequestError:
            # Exists with another configuration: bring it up to date.
            await js.update_stream(config)


async def publish(
    js: JetStreamContext, subject: str, body: bytes, headers: dict[str, str], *, timeout_s: float = 5.0
) -> None:
    """Publish and wait for the broker's acknowledgement (raises when not stored)."""
    await js.publish(subject, body, headers=headers, timeout=timeout_s)


async def dead_letter(
    js: JetStreamContext, namespace: str, *, consumer: str, msg: Msg, reason: str, timeout_s: float = 5.0
) -> None:
    """Store a message a consumer gave up on, with the reason, in the dead-letter stream."""
    headers = dict(msg.headers or {})
    original_subject = headers.pop(ORIGINAL_SUBJECT, msg.subject)
    headers.pop("Nats-Msg-Id", None)
    headers[DEAD_CONSUMER] = consumer
    headers[DEAD_REASON] = reason[:1000]
    headers[DEAD_SUBJECT] = original_subject
    # Unique per delivered message, so a dead letter written twice (the term got lost) is stored once.
    headers["Nats-Msg-Id"] = f"{consumer}:{msg.metadata.stream}:{msg.metadata.sequence.stream}"
    await publish(js, DEAD_LETTERS.subject(namespace, consumer), msg.data, headers, timeout_s=timeout_s)


def consumer_config(
    *, durable: str, filter_subject: str, ack_wait_s: float, max_ack_pending: int
) -> api.ConsumerConfig:
    """A durable pull consumer's configuration; the server redelivers for ever, the runner decides what is poison."""
    return api.ConsumerConfig(
        name=durable,
        durable_name=durable,
        ack_policy=api.AckPolicy.EXPLICIT,
        deliver_policy=api.DeliverPolicy.ALL,
        # Unlimited: after the last delivery the server would drop a message whatever the runner did with it.
        max_deliver=-1,
        ack_wait=ack_wait_s,
        max_ack_pending=max_ack_pending,
        filter_subject=filter_subject,
    )


async def run_consumer(
    js: JetStreamContext,
    *,
    namespace: str,
    stream: StreamSpec,
    durable: str,
    handler: Handler,
    stop: asyncio.Event,
    filter_subject: str | None = None,
    batch_handler: BatchHandler | None = None,
    batch: int = 64,
    ack_wait_s: float = 30.0,
    retry_initial_s: float = 0.5,
    retry_max_s: float = 30.0,
    poison_budget: int = 5,
    publish_timeout_s: float = 5.0,
) -> None:
    """Feed a durable pull consumer's messages, in order, to handler until stop is set.

    The handler commits its own work; the message is acked only after it returns. While it fails the message
    stays in hand (kept alive with in-progress acks, so the broker neither redelivers nor counts a delivery)
    and is retried with capped exponential backoff: without limit for dependency errors, poison_budget times
    for unexpected ones. Undecodable messages, a handler's PoisonMessage and a spent budget are dead-lettered,
    then termed. On stop, what is still in hand is nak'ed for immediate redelivery.

    With a batch_handler, the messages of a fetch are first handed to it together and acked once it returns: a
    commit per fetch rather than per message. If any of them cannot be decoded, or it raises, they are handled one
    at a time by handler as above (its work was rolled back, and the inbox makes a repeat harmless anyway).
    """
    stream_name = stream.stream_name(namespace)
    # Create or update: changed settings reach a durable that already exists.
    await js.add_consumer(
        stream_name,
        consumer_config(
            durable=durable,
            filter_subject=filter_subject or stream.wildcard(namespace),
            ack_wait_s=ack_wait_s,
            max_ack_pending=batch * 4,
        ),
    )
    sub = await js.pull_subscribe_bind(durable=durable, stream=stream_name)
    consumer = _Consumer(
        js,
        namespace,
        durable,
        handler,
        stop,
        RetryPolicy(retry_initial_s, retry_max_s, poison_budget),
        publish_timeout_s,
    )
    try:
        while not stop.is_set():
            try:
                msgs = await sub.fetch(batch, timeout=1.0)
            except nats.errors.TimeoutError:
                continue
            except Exception as exc:  # broker away: the client reconnects by itself
                log.warning("consumer %s cannot fetch: %r", durable, exc)
                await _pause(stop, 1.0)
                continue
            unsettled = list(msgs)
            async with _kept_in_progress(unsettled, every_s=ack_wait_s / 3):
                if (
                    batch_handler is not None
                    and len(unsettled) > 1
                    and await _handle_together(consumer, unsettled, batch_handler)
                ):
                    for msg in unsettled:
                        await _settle(msg.ack())
                    continue
                while unsettled and await _handle_one(consumer, unsettled[0]):
                    unsettled.pop(0)
                for msg in unsettled:  # stopping: another replica gets them at once, in order
                    await _settle(msg.nak())
    finally:
        await sub.unsubscribe()


@dataclass(frozen=True)
class RetryPolicy:
    """Capped exponential backoff, and how many unexpected failures in a row make a message poison."""

    initial_s: float
    max_s: float
    poison_budget: int

    def delay(self, attempt: int) -> float:
        """Seconds to wait after the given failed attempt (1-based)."""
        return float(min(self.initial_s * 2 ** min(attempt - 1, 30), self.max_s))


@dataclass(frozen=True)
class _Consumer:
    """What handling one message of a running consumer needs."""

    js: JetStreamContext
    namespace: str
    durable: str
    handler: Handler
    stop: asyncio.Event
    retry: RetryPolicy
    publish_timeout_s: float


async def _handle_together(consumer: _Consumer, msgs: list[Msg], batch_handler: BatchHandler) -> bool:
    """Hand the messages to the batch handler at once; False (nothing acked) if one is undecodable or it raises."""
    try:
        events = [parse_message(msg.headers or {}, msg.data) for msg in msgs]
    except PoisonMessage:
        return False
    try:
        await batch_handler(events)
    except Exception as exc:
        log.info("consumer %s handles %d messages one at a time: %r", consumer.durable, len(msgs), exc)
        return False
    return True


@contextmanager
def consuming(event: Event) -> Iterator[trace.Span]:
    """The consumer span of one event, a child of its publisher's: for a batch handler's work on each event."""
    with tracer.start_as_current_span(
        f"consume {event.type}",
        context=propagate.extract(event.headers),
        kind=trace.SpanKind.CONSUMER,
        attributes={"messaging.system": "nats"},
    ) as span:
        yield span


async def _handle_one(consumer: _Consumer, msg: Msg) -> bool:
    """Run the handler on one message until it is settled: acked, or dead-lettered and termed.

    Returns False, leaving the message unsettled, when stop is set before that.
    """
    durable, retry = consumer.durable, consumer.retry
    headers = msg.headers or {}
    subject = headers.get(ORIGINAL_SUBJECT, msg.subject)
    with tracer.start_as_current_span(
        f"consume {headers.get('ce-type', subject)}",
        context=propagate.extract(headers),
        kind=trace.SpanKind.CONSUMER,
        attributes={"messaging.system": "nats", "messaging.destination.name": subject},
    ) as span:
        try:
            event = parse_message(headers, msg.data)
        except PoisonMessage as exc:
            log.error("consumer %s dead-letters an undecodable message: %s", durable, exc)
            return await _give_up(consumer, msg, f"poison: {exc}")
        attempt = failures = 0
        while not consumer.stop.is_set():
            attempt += 1
            try:
                await consumer.handler(event)
            except PoisonMessage as exc:
                log.error("consumer %s dead-letters poison message %s: %s", durable, event.id, exc)
                return await _give_up(consumer, msg, f"poison: {exc}")
            except DEPENDENCY_ERRORS as exc:
                span.record_exception(exc)
                log.warning(
                    "consumer %s: a dependency is unavailable, retrying %s in %.1fs (attempt %d): %r",
                    durable,
                    event.id,
                    retry.delay(attempt),
                    attempt,
                    exc,
                )
            except Exception as exc:
                span.record_exception(exc)
                failures += 1
                if failures >= retry.poison_budget:
                    log.error("consumer %s gives up on %s after %d failures: %r", durable, event.id, failures, exc)
                    return await _give_up(consumer, msg, f"failed {failures} times: {exc!r}")
                log.warning(
                    "consumer %s retries %s in %.1fs (failure %d of %d): %r",
                    durable,
                    event.id,
                    retry.delay(attempt),
                    failures,
                    retry.poison_budget,
                    exc,
                )
            else:
                await _settle(msg.ack())
                return True
            await _pause(consumer.stop, retry.delay(attempt))
        return False


async def _give_up(consumer: _Consumer, msg: Msg, reason: str) -> bool:
    """Dead-letter then term; a failed dead-letter write is retried (the message stays in hand) until it is stored."""
    attempt = 0
    while not consumer.stop.is_set():
        attempt += 1
        try:
            await dead_letter(
                consumer.js,
                consumer.namespace,
                consumer=consumer.durable,
                msg=msg,
                reason=reason,
                timeout_s=consumer.publish_timeout_s,
            )
        except Exception as exc:
            delay = consumer.retry.delay(attempt)
            log.error("consumer %s cannot dead-letter, retrying in %.1fs: %r", consumer.durable, delay, exc)
            await _pause(consumer.stop, delay)
        else:
            await _settle(msg.term())
            return True
    return False


@asynccontextmanager
async def _kept_in_progress(msgs: list[Msg], *, every_s: float) -> AsyncIterator[None]:
    """Tell the broker, every every_s, that the messages still in hand are being worked on, so none is redelivered."""

    async def beat() -> None:
        while True:
            await asyncio.sleep(every_s)
            for msg in list(msgs):
                # With the broker away this fails; the message is then redelivered, which is all that can happen.
                with contextlib.suppress(Exception):
                    await msg.in_progress()

    task = asyncio.create_task(beat())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def _pause(stop: asyncio.Event, seconds: float) -> bool:
    """Wait the given time; True as soon as stop is set."""
    try:
        await asyncio.wait_for(stop.wait(), seconds)
    except TimeoutError:
        return False
    return True


async def _settle(action: Awaitable[None]) -> None:
    """Ack/nak/term/in-progress; if the broker is away the message is simply redelivered later."""
    try:
        await action
    except Exception as exc:
        log.warning("cannot settle message: %r", exc)


async def stream_last_sequence(js: JetStreamContext, stream_name: str) -> int:
    """The last stream sequence now, 0 for an empty or missing stream."""
    try:
        info = await js.stream_info(stream_name)
    except NotFoundError:
        return 0
    return info.state.last_seq


async def check_connected(nc: NATS) -> None:
    """Readiness check: raise unless the connection to NATS is up."""
    if not nc.is_connected:
        raise ConnectionError("not connected to NATS")
