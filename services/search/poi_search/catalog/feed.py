"""Feeding the read model: each replica reads the last message of every subject, then follows.

Data age: every HEAD_POLL_S the replica asks the broker for a stream's last sequence (its head). Once it has
applied every message up to that head, it knows its data was complete at the moment it asked: that moment is the
stream's `confirmed_at`. The replica's data age is the time since the older of its streams' `confirmed_at`. It is
about a second while the broker answers and the replica keeps up, and grows while the broker is away or the replica
lags behind. Before the first confirmation of every stream there is no data age: the replica has not caught up yet.
"""

import asyncio
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from nats.js import JetStreamContext, api
from nats.js.errors import NotFoundError

from poi_shared.contracts import StreamSpec
from poi_shared.envelope import Event, PoisonMessage, parse_message

log = logging.getLogger(__name__)
HEAD_POLL_S = 1.0
HEAD_TIMEOUT_S = 1.0


@dataclass
class StreamProgress:
    """How far this replica has followed one stream."""

    applied_seq: int = 0  # stream sequence of the last message applied
    confirmed_at: float | None = None  # monotonic time at which it last asked for a head it has since reached


def data_age_s(progress: Iterable[StreamProgress], now: float | None = None) -> float | None:
    """Seconds since the replica last confirmed it held everything in every stream; None before it ever did."""
    confirmed = [p.confirmed_at for p in progress]
    if not confirmed or any(t is None for t in confirmed):
        return None
    now = time.monotonic() if now is None else now
    return max(0.0, now - min(t for t in confirmed if t is not None))


async def follow_stream(
    js: JetStreamContext,
    *,
    namespace: str,
    stream: StreamSpec,
    apply: Callable[[Event], object],
    progress: StreamProgress,
    stop: asyncio.Event,
) -> None:
    """Apply every subject's latest event, then every new one; confirm the stream's head every HEAD_POLL_S."""
    name = stream.stream_name(namespace)
    # An ordered consumer is ephemeral and per replica: each replica needs every event, not a share.
    sub = await js.subscribe(
        stream.wildcard(namespace),
        stream=name,
        ordered_consumer=True,
        deliver_policy=api.DeliverPolicy.LAST_PER_SUBJECT,
        idle_heartbeat=5.0,
    )
    target: tuple[float, int] | None = None  # (when asked, head) not reached yet
    next_poll = 0.0
    try:
        while not stop.is_set():
            now = time.monotonic()
            if target is None and now >= next_poll:
                next_poll = now + HEAD_POLL_S
                target = await _ask_head(js, name, now)
            if target is not None and progress.applied_seq >= target[1]:
                progress.confirmed_at, target = target[0], None
                continue
            try:
                msg = await sub.next_msg(timeout=HEAD_POLL_S / 2)
            except TimeoutError:
                continue
            try:
                apply(parse_message(msg.headers, msg.data))
            except PoisonMessage as exc:
                log.error("search skips poison message on %s: %s", msg.subject, exc)
            # The read model keeps what it applied, so after a resubscription the highest sequence still holds.
            progress.applied_seq = max(progress.applied_seq, msg.metadata.sequence.stream)
    finally:
        await sub.unsubscribe()


async def _ask_head(js: JetStreamContext, name: str, asked_at: float) -> tuple[float, int] | None:
    """(asked_at, the stream's last sequence), or None if the broker does not answer in time."""
    try:
        info = await asyncio.wait_for(js.stream_info(name), HEAD_TIMEOUT_S)
    except NotFoundError:
        return asked_at, 0
    except Exception as exc:
        log.debug("cannot read the head of %s: %r", name, exc)
        return None
    return asked_at, info.state.last_seq
