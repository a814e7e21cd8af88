"""Following the status stream for one feed client.

Each client gets its own ordered consumer on the STATUS stream, from the sequence after its Last-Event-ID: the
stream sequence is every event's id, so a client resumes on any replica. Only point status events are sent
(changed, stale, low_fuel), only for points the public may see (checked against the directory as each event is
sent), and only in the client's area. Area events stay internal: an area switch shows as its points' changes.
"""

import asyncio
import contextlib
import json
import logging
import signal
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from types import FrameType

import asyncpg
from fastapi.sse import format_sse_event
from nats.aio.msg import Msg
from nats.js import JetStreamContext, api

from poi_shared.contracts import STATUS, STATUS_CHANGED, STATUS_LOW_FUEL, STATUS_STALE, StatusState
from poi_shared.envelope import PoisonMessage, parse_message
from poi_status.points.service import Directory
from poi_status.reports.service import public_json

log = logging.getLogger(__name__)
FEED_EVENTS = {STATUS_CHANGED.type: "changed", STATUS_STALE.type: "stale", STATUS_LOW_FUEL.type: "low_fuel"}
# How often a client's loop looks up from the stream to see whether the replica is stopping.
STOP_CHECK_S = 1.0
RETRY_MS = 3000


@dataclass(frozen=True)
class Start:
    """Where a client's feed starts, and why it skips what it missed, if it does."""

    sequence: int
    reset: str | None = None


async def start_for(js: JetStreamContext, *, namespace: str, last_event_id: int | None, replay_max: int) -> Start:
    """The first sequence to send: after the client's last event, or the next new one.

    A client further behind than replay_max events, or holding an id this stream never gave (it was recreated),
    starts at the next new event and is told to reload the current status first.
    """
    state = (await js.stream_info(STATUS.stream_name(namespace))).state
    head = state.last_seq
    if last_event_id is None:
        return Start(head + 1)
    if last_event_id > head:
        return Start(head + 1, f"event {last_event_id} is unknown to this feed")
    if head - last_event_id > replay_max:
        return Start(head + 1, f"more than {replay_max} events were missed")
    return Start(last_event_id + 1)


async def follow(
    js: JetStreamContext,
    pool: asyncpg.Pool,
    directory: Directory,
    *,
    namespace: str,
    start: Start,
    katotth: str,
    heartbeat_s: float,
    stop: asyncio.Event,
) -> AsyncIterator[bytes]:
    """The client's event stream, as text/event-stream bytes, until it leaves or the replica stops."""
    if start.reset is not None:
        yield format_sse_event(
            event="reset",
            id=str(start.sequence - 1),
            retry=RETRY_MS,
            data_str=json.dumps({"reason": f"{start.reset}; read the current status again, then follow from here"}),
        )
    else:
        yield format_sse_event(comment="following status changes", retry=RETRY_MS)
    sub = await js.subscribe(
        STATUS.wildcard(namespace),
        stream=STATUS.stream_name(namespace),
        ordered_consumer=True,
        config=api.ConsumerConfig(deliver_policy=api.DeliverPolicy.BY_START_SEQUENCE, opt_start_seq=start.sequence),
        idle_heartbeat=5.0,
    )
    last_sent = time.monotonic()
    try:
        while not stop.is_set():
            try:
                msg = await sub.next_msg(timeout=min(STOP_CHECK_S, heartbeat_s))
            except TimeoutError:
                msg = None
            if msg is not None and (event := await _feed_event(msg, pool, directory, katotth)) is not None:
                yield event
                last_sent = time.monotonic()
            elif time.monotonic() - last_sent >= heartbeat_s:
                yield format_sse_event(comment="heartbeat")
                last_sent = time.monotonic()
    finally:
        with contextlib.suppress(Exception):
            await sub.unsubscribe()


async def _feed_event(msg: Msg, pool: asyncpg.Pool, directory: Directory, katotth: str) -> bytes | None:
    """The message as a feed event, or None if this client must not see it."""
    name = FEED_EVENTS.get((msg.headers or {}).get("ce-type", ""))
    if name is None:
        return None
    try:
        event = parse_message(msg.headers, msg.data)
    except PoisonMessage as exc:
        log.error("feed skips poison message on %s: %s", msg.subject, exc)
        return None
    state = event.data
    assert isinstance(state, StatusState)
    known = (await directory.lookup(pool, [state.point_id])).get(state.point_id)
    if known is None or not known.public or not known.katotth.startswith(katotth):
        return None
    view = public_json(state.point_id, state, now=datetime.now(UTC))
    return format_sse_event(event=name, id=str(msg.metadata.sequence.stream), data_str=view.decode())


@contextlib.contextmanager
def stopped_by_exit_signals(stop: asyncio.Event) -> Iterator[None]:
    """Set stop on SIGTERM or SIGINT, then let the server's own handler run.

    The server waits for open responses to finish before it ends the app, and a feed never finishes by itself:
    this ends the feeds first, so shutting down takes no longer than its other requests. Only the main thread can
    handle signals; elsewhere (tests) the feeds end when the app does.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    loop = asyncio.get_running_loop()
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}

    def handle(signum: int, frame: FrameType | None) -> None:
        loop.call_soon_threadsafe(stop.set)
        chained = previous[signal.Signals(signum)]
        if callable(chained):
            chained(signum, frame)
        elif chained == signal.SIG_DFL:
            signal.signal(signum, signal.SIG_DFL)
            signal.raise_signal(signum)

    for sig in previous:
        signal.signal(sig, handle)
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
