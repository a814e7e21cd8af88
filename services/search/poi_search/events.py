"""What search consumes: every replica reads the last message of every subject of both streams, then follows.

Search emits nothing. Each replica follows POINTS and STATUS with an ordered consumer of its own (ephemeral, per
replica: each needs every event, not a share), applies each event to its read model unless the model holds that
version or a newer one, and skips what it cannot read.

Data age: every HEAD_POLL_S the replica asks the broker for a stream's last sequence (its head). Once it has
applied every message up to that head, it knows its data was complete at the moment it asked: that moment is the
stream's `confirmed_at`. The replica's data age is the time since the older of its streams' `confirmed_at`. It is
about a second while the broker answers and the replica keeps up, and grows while the broker is away or the replica
lags behind. Before the first confirmation of every stream there is no data age: the replica has not caught up yet.
"""

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from nats.aio.msg import Msg
from nats.js import JetStreamContext, api
from nats.js.errors import NotFoundError
from opentelemetry import propagate, trace

from poi_search.catalog.readmodel import ReadModel
from poi_shared.contracts import PointState, StatusState, StreamSpec
from poi_shared.envelope import Event, PoisonMessage, parse_message

log = logging.getLogger(__name__)
tracer = trace.get_tracer(__name__)
HEAD_POLL_S = 1.0
HEAD_TIMEOUT_S = 1.0
CATCH_UP_POLL_S = 0.02  # how often a replica that asked for a head checks whether it got there

Apply = Callable[[Event, int], bool]
"""Applies an event with its stream sequence; True if it changed the model."""


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


def applier(model: ReadModel) -> Apply:
    """Apply point and status events to the model; area events change no point and are skipped."""

    def apply(event: Event, seq: int) -> bool:
        if isinstance(event.data, PointState):
            return model.apply_point(event.data, seq)
        if isinstance(event.data, StatusState):
            return model.apply_status(event.data, seq)
        return False

    return apply


async def follow_stream(
    js: JetStreamContext,
    *,
    namespace: str,
    stream: StreamSpec,
    apply: Apply,
    progress: StreamProgress,
    stop: asyncio.Event,
    on_live_event: Callable[[float], None] = lambda seconds: None,
) -> None:
    """Apply every subject's latest event, then every new one; confirm the stream's head every HEAD_POLL_S.

    Once caught up, on_live_event gets, for each event applied, the seconds since it was made (its ce-time).
    """
    name = stream.stream_name(namespace)

    async def on_message(msg: Msg) -> None:  # the client calls it for one message at a time, in order
        seq = msg.metadata.sequence.stream
        headers = msg.headers or {}
        # A child of the producer's span (unsampled, so nearly free, unless the producer's trace is recorded).
        with tracer.start_as_current_span(
            f"apply {headers.get('ce-type', msg.subject)}",
            context=propagate.extract(headers),
            kind=trace.SpanKind.CONSUMER,
            attributes={"messaging.system": "nats", "messaging.destination.name": msg.subject},
        ):
            try:
                event = parse_message(msg.headers, msg.data)
                if apply(event, seq) and progress.confirmed_at is not None:
                    on_live_event((datetime.now(UTC) - event.time).total_seconds())
            except PoisonMessage as exc:
                log.error("search skips poison message %d on %s: %s", seq, msg.subject, exc)
            except Exception:
                log.exception("search skips message %d on %s it failed to apply", seq, msg.subject)
        # The read model keeps what it applied, so after a resubscription the highest sequence still holds.
        progress.applied_seq = max(progress.applied_seq, seq)

    # A callback costs the client less per message than awaiting each one, which counts at a cold start.
    sub = await js.subscribe(
        stream.wildcard(namespace),
        stream=name,
        cb=on_message,
        ordered_consumer=True,
        deliver_policy=api.DeliverPolicy.LAST_PER_SUBJECT,
        idle_heartbeat=5.0,
    )
    try:
        while not stop.is_set():
            asked_at = time.monotonic()
            head = await _ask_head(js, name)
            while head is not None and progress.applied_seq < head and not stop.is_set():
                await _pause(stop, CATCH_UP_POLL_S)
            if head is not None and not stop.is_set():
                progress.confirmed_at = asked_at
            await _pause(stop, asked_at + HEAD_POLL_S - time.monotonic())
    finally:
        await sub.unsubscribe()


async def _pause(stop: asyncio.Event, seconds: float) -> None:
    """Sleep the given time, or less if stop is set."""
    if seconds > 0:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), seconds)


async def _ask_head(js: JetStreamContext, name: str) -> int | None:
    """The stream's last sequence, or None if the broker does not answer in time."""
    try:
        info = await asyncio.wait_for(js.stream_info(name), HEAD_TIMEOUT_S)
    except NotFoundError:
        return 0
    except Exception as exc:
        log.debug("cannot read the head of %s: %r", name, exc)
        return None
    return info.state.last_seq
