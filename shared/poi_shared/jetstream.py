"""NATS JetStream: connecting, stream provisioning and the durable pull-consumer runner."""

import asyncio
import logging
from collections.abc import Awaitable, Callable

import nats
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.js import JetStreamContext, api
from nats.js.errors import BadRequestError, NotFoundError
from opentelemetry import propagate, trace
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_delay, wait_exponential

from poi_shared.contracts import DEAD_LETTERS, STREAMS, StreamSpec
from poi_shared.envelope import Event, PoisonMessage, parse_message

log = logging.getLogger(__name__)
tracer = trace.get_tracer("poi_shared.jetstream")

Handler = Callable[[Event], Awaitable[None]]
DUPLICATE_WINDOW_S = 120.0
DEFAULT_BACKOFF_S = (1.0, 2.0, 5.0, 10.0, 30.0, 60.0)


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


def stream_config(spec: StreamSpec, namespace: str) -> api.StreamConfig:
    """The server-side configuration of one stream of the contract."""
    return api.StreamConfig(
        name=spec.stream_name(namespace),
        description=spec.description,
        subjects=[spec.wildcard(namespace)],
        retention=api.RetentionPolicy.LIMITS,
        storage=api.StorageType.FILE,
        max_msgs_per_subject=spec.max_msgs_per_subject,
        duplicate_window=DUPLICATE_WINDOW_S,
    )


async def ensure_streams(js: JetStreamContext, namespace: str) -> None:
    """Create or update every stream of the contract; safe to run from every replica."""
    for spec in STREAMS:
        config = stream_config(spec, namespace)
        try:
            await js.add_stream(config)
        except BadRequestError:
            # Exists with another configuration: bring it up to date.
            await js.update_stream(config)


async def publish(js: JetStreamContext, subject: str, body: bytes, headers: dict[str, str]) -> None:
    """Publish and wait for the broker's acknowledgement (raises when not stored)."""
    await js.publish(subject, body, headers=headers, timeout=5)


async def dead_letter(js: JetStreamContext, namespace: str, *, consumer: str, msg: Msg, reason: str) -> None:
    """Store a message a consumer gave up on, with the reason, in the dead-letter stream."""
    headers = dict(msg.headers or {})
    headers.pop("Nats-Msg-Id", None)
    headers["Poi-Dead-Consumer"] = consumer
    headers["Poi-Dead-Reason"] = reason[:1000]
    headers["Poi-Dead-Subject"] = msg.subject
    seq = msg.metadata.sequence.stream
    headers["Nats-Msg-Id"] = f"{consumer}:{seq}"
    await publish(js, DEAD_LETTERS.subject(namespace, consumer), msg.data, headers)


async def run_consumer(
    js: JetStreamContext,
    *,
    namespace: str,
    stream: StreamSpec,
    durable: str,
    handler: Handler,
    stop: asyncio.Event,
    max_deliver: int = 8,
    backoff_s: tuple[float, ...] = DEFAULT_BACKOFF_S,
    batch: int = 64,
    ack_wait_s: float = 30.0,
) -> None:
    """Feed a durable pull consumer's messages to handler until stop is set.

    The handler commits its own work; the message is acked only after it returns.
    Poison messages and messages past max_deliver are dead-lettered and termed;
    anything else is nak'ed with a growing delay.
    """
    config = api.ConsumerConfig(
        durable_name=durable,
        ack_policy=api.AckPolicy.EXPLICIT,
        deliver_policy=api.DeliverPolicy.ALL,
        max_deliver=max_deliver,
        ack_wait=ack_wait_s,
        max_ack_pending=batch * 4,
        filter_subject=stream.wildcard(namespace),
    )
    sub = await js.pull_subscribe(
        stream.wildcard(namespace), durable=durable, stream=stream.stream_name(namespace), config=config
    )
    while not stop.is_set():
        try:
            msgs = await sub.fetch(batch, timeout=1.0)
        except nats.errors.TimeoutError:
            continue
        except Exception as exc:  # broker away: the client reconnects by itself
            log.warning("consumer %s cannot fetch: %s", durable, exc)
            await asyncio.sleep(1.0)
            continue
        for msg in msgs:
            await _handle_one(js, namespace, durable, msg, handler, max_deliver, backoff_s)
    await sub.unsubscribe()


async def _handle_one(
    js: JetStreamContext,
    namespace: str,
    durable: str,
    msg: Msg,
    handler: Handler,
    max_deliver: int,
    backoff_s: tuple[float, ...],
) -> None:
    """Run the handler on one message and settle it: ack, nak with delay, or dead-letter and term."""
    headers = msg.headers or {}
    attempt = msg.metadata.num_delivered
    context = propagate.extract(headers)
    with tracer.start_as_current_span(
        f"consume {headers.get('ce-type', msg.subject)}",
        context=context,
        kind=trace.SpanKind.CONSUMER,
        attributes={"messaging.system": "nats", "messaging.destination.name": msg.subject},
    ):
        try:
            await handler(parse_message(headers, msg.data))
        except PoisonMessage as exc:
            log.error("consumer %s dead-letters poison message: %s", durable, exc)
            await _give_up(js, namespace, durable, msg, f"poison: {exc}")
            return
        except Exception as exc:
            if attempt >= max_deliver:
                log.error("consumer %s gives up after %d deliveries: %r", durable, attempt, exc)
                await _give_up(js, namespace, durable, msg, f"failed {attempt} times: {exc!r}")
            else:
                delay = backoff_s[min(attempt - 1, len(backoff_s) - 1)]
                log.warning("consumer %s retries in %.0fs (delivery %d): %r", durable, delay, attempt, exc)
                await _settle(msg.nak(delay=delay))
            return
    await _settle(msg.ack())


async def _give_up(js: JetStreamContext, namespace: str, durable: str, msg: Msg, reason: str) -> None:
    """Dead-letter then term; if the dead-letter write fails, nak so nothing is lost."""
    try:
        await dead_letter(js, namespace, consumer=durable, msg=msg, reason=reason)
    except Exception as exc:
        log.error("consumer %s cannot dead-letter, will retry: %r", durable, exc)
        await _settle(msg.nak(delay=DEFAULT_BACKOFF_S[-1]))
        return
    await _settle(msg.term())


async def _settle(action: Awaitable[None]) -> None:
    """Ack/nak/term; if the broker is away the message is simply redelivered later."""
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
