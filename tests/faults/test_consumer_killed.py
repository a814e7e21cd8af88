"""Notify's consumer killed (SIGKILL) in the middle of a burst: what it had in hand comes again, handled once."""

import asyncio
import uuid

import nats
import pytest

from poi_notify.events import STATUS_CONSUMER
from poi_shared.contracts import DEAD_LETTERS, STATUS
from tests.faults.conftest import POLL_BOUND_S, FaultStack, observed, publish
from tests.support.events import status_event

pytestmark = [pytest.mark.e2e, pytest.mark.faults]
EVENTS = 300


async def test_events_redelivered_after_a_kill_are_handled_once(faults: FaultStack) -> None:
    messages = [status_event(faults.namespace) for _ in range(EVENTS)]
    points = [uuid.UUID(m.headers["ce-subject"]) for m in messages]
    await publish(faults, messages)
    async with asyncio.timeout(POLL_BOUND_S):
        while not (done := len(await observed(faults, points))):
            await asyncio.sleep(0.01)
    faults.kill("notify")  # mid-burst: some committed and not yet acknowledged, some fetched and not handled
    faults.start("notify")  # before any assertion: the later tests of the stack need it
    assert done < EVENTS, "notify handled the whole burst before it could be killed"

    async with asyncio.timeout(POLL_BOUND_S):
        while len(await observed(faults, points)) < EVENTS:
            await asyncio.sleep(0.2)

    nc = await nats.connect(faults.nats.url)
    try:
        js = nc.jetstream()
        # Events the killed notify committed but never acked come again once their ack wait is over (a fetch of
        # them at most): the consumer is settled when the new notify has skipped them too.
        async with asyncio.timeout(POLL_BOUND_S):
            while True:
                info = await js.consumer_info(STATUS.stream_name(faults.namespace), STATUS_CONSUMER)
                if info.num_pending == 0 and info.num_ack_pending == 0:
                    break
                await asyncio.sleep(0.2)
        await asyncio.sleep(1.0)  # a late duplicate would show here
        rows = await observed(faults, points)
        assert sorted(rows) == sorted(points)  # every event once
        dead = await js.stream_info(
            DEAD_LETTERS.stream_name(faults.namespace),
            subjects_filter=DEAD_LETTERS.subject(faults.namespace, STATUS_CONSUMER),
        )
        assert not dead.state.subjects  # a redelivery is not poison
    finally:
        await nc.close()
