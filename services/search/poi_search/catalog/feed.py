"""Feeding the read model: each replica reads the last message of every subject, then follows."""

import asyncio
import logging
from collections.abc import Callable

from nats.js import JetStreamContext, api

from poi_shared.contracts import StreamSpec
from poi_shared.envelope import Event, PoisonMessage, parse_message
from poi_shared.jetstream import stream_last_sequence

log = logging.getLogger(__name__)


async def follow_stream(
    js: JetStreamContext,
    *,
    namespace: str,
    stream: StreamSpec,
    apply: Callable[[Event], object],
    caught_up: asyncio.Event,
    stop: asyncio.Event,
) -> None:
    """Apply every subject's latest event, set caught_up once the stream's head is reached, keep following."""
    name = stream.stream_name(namespace)
    head = await stream_last_sequence(js, name)
    if head == 0:
        caught_up.set()
    # An ordered consumer is ephemeral and per replica: each replica needs every event, not a share.
    sub = await js.subscribe(
        stream.wildcard(namespace),
        stream=name,
        ordered_consumer=True,
        deliver_policy=api.DeliverPolicy.LAST_PER_SUBJECT,
        idle_heartbeat=5.0,
    )
    try:
        while not stop.is_set():
            try:
                msg = await sub.next_msg(timeout=1.0)
            except TimeoutError:
                continue
            try:
                apply(parse_message(msg.headers, msg.data))
            except PoisonMessage as exc:
                log.error("search skips poison message on %s: %s", msg.subject, exc)
            meta = msg.metadata
            if meta.sequence.stream >= head or meta.num_pending == 0:
                caught_up.set()
    finally:
        await sub.unsubscribe()
