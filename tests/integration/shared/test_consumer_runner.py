"""The consumer runner acks after the handler, rides out dependency outages in order, dead-letters only poison."""

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.js import api

from poi_shared import jetstream
from poi_shared.contracts import DEAD_LETTERS, STATUS, STATUS_CHANGED, OpenState, StatusState
from poi_shared.envelope import Event, PoisonMessage, build_message
from poi_shared.errors import DependencyUnavailable

FAST = {"retry_initial_s": 0.02, "retry_max_s": 0.1, "ack_wait_s": 5.0}


async def publish_status(nc: NATS, namespace: str, version: int = 1, point_id: uuid.UUID | None = None) -> str:
    state = StatusState(
        point_id=point_id or uuid.uuid4(),
        version=version,
        state=OpenState.open,
        reported_at=datetime.now(UTC),
        reported_by="op",
    )
    message = build_message(
        namespace=namespace, event_type=STATUS_CHANGED, key=str(state.point_id), data=state, source="/test"
    )
    await nc.jetstream().publish(message.subject, message.body, headers=message.headers)
    return message.event_id


async def run_until(
    nc: NATS, namespace: str, durable: str, handler: Callable[[Event], Awaitable[None]], done: asyncio.Event, **kw: Any
) -> None:
    """Run the consumer until done is set (at most 30 s), then stop it."""
    stop = asyncio.Event()
    task = asyncio.create_task(
        jetstream.run_consumer(
            nc.jetstream(), namespace=namespace, stream=STATUS, durable=durable, handler=handler, stop=stop, **kw
        )
    )
    try:
        await asyncio.wait_for(done.wait(), 30)
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)


async def eventually(check: Callable[[], Awaitable[bool]], bound_s: float = 30.0) -> None:
    """Poll until check() holds; fail after a generous bound."""
    async with asyncio.timeout(bound_s):
        while not await check():
            await asyncio.sleep(0.05)


async def settled(nc: NATS, namespace: str, durable: str) -> api.ConsumerInfo:
    """The consumer's state once the broker has every ack: nothing pending, nothing waiting for an ack."""
    js = nc.jetstream()

    async def acked() -> bool:
        info = await js.consumer_info(STATUS.stream_name(namespace), durable)
        return info.num_ack_pending == 0 and info.num_pending == 0

    await eventually(acked)
    return await js.consumer_info(STATUS.stream_name(namespace), durable)


async def dead_letters_for(nc: NATS, namespace: str, durable: str) -> list[Msg]:
    js = nc.jetstream()
    sub = await js.subscribe(
        DEAD_LETTERS.subject(namespace, durable), stream=DEAD_LETTERS.stream_name(namespace), ordered_consumer=True
    )
    found = []
    try:
        while True:
            found.append(await sub.next_msg(timeout=0.5))
    except TimeoutError:
        return found
    finally:
        await sub.unsubscribe()


async def has_dead_letter(nc: NATS, namespace: str, durable: str) -> bool:
    info = await nc.jetstream().stream_info(
        DEAD_LETTERS.stream_name(namespace), subjects_filter=DEAD_LETTERS.subject(namespace, durable)
    )
    return bool(info.state.subjects)


async def dead_letters_of(nc: NATS, namespace: str, durable: str, event_id: str) -> list[Msg]:
    """The dead letters of one event (a new durable also reads what earlier tests published)."""
    return [m for m in await dead_letters_for(nc, namespace, durable) if m.headers and m.headers["ce-id"] == event_id]


async def test_dependency_errors_are_retried_in_hand_past_the_budget_then_acked(nc: NATS, namespace: str) -> None:
    durable = f"retry-{uuid.uuid4().hex[:8]}"
    event_id = await publish_status(nc, namespace)
    attempts: list[str] = []
    done = asyncio.Event()

    async def flaky(event: Event) -> None:
        if event.id != event_id:
            return
        attempts.append(event.id)
        if len(attempts) <= 12:  # four times the poison budget
            raise DependencyUnavailable("postgresql") if len(attempts) % 2 else ConnectionError("database away")
        done.set()

    await run_until(nc, namespace, durable, flaky, done, poison_budget=3, **FAST)

    assert attempts == [event_id] * 13
    info = await settled(nc, namespace, durable)
    assert info.num_redelivered == 0  # kept in hand: the broker never delivered it again
    assert info.config.max_deliver == -1
    assert not await has_dead_letter(nc, namespace, durable)


async def test_a_subjects_events_are_handled_in_order_through_an_outage(nc: NATS, namespace: str) -> None:
    durable = f"order-{uuid.uuid4().hex[:8]}"
    point_id = uuid.uuid4()
    for version in (1, 2, 3):
        await publish_status(nc, namespace, version=version, point_id=point_id)
    handled: list[int] = []
    failures = 0
    done = asyncio.Event()

    async def handler(event: Event) -> None:
        nonlocal failures
        assert isinstance(event.data, StatusState)
        if event.data.point_id != point_id:
            return
        if event.data.version == 1 and failures < 5:
            failures += 1
            raise ConnectionRefusedError("database away")
        handled.append(event.data.version)
        if len(handled) == 3:
            done.set()

    await run_until(nc, namespace, durable, handler, done, **FAST)
    assert handled == [1, 2, 3]


async def test_poison_message_is_dead_lettered_with_reason(nc: NATS, namespace: str) -> None:
    durable = f"poison-{uuid.uuid4().hex[:8]}"
    js = nc.jetstream()
    subject = STATUS.subject(namespace, str(uuid.uuid4()))
    await js.publish(subject, b"not json", headers={"ce-id": "bad-1", "ce-type": "ua.poi.status.changed.v1"})
    seen: list[str] = []
    done = asyncio.Event()

    async def handler(event: Event) -> None:
        seen.append(event.id)

    async def watch() -> None:
        await eventually(lambda: has_dead_letter(nc, namespace, durable))
        done.set()

    watcher = asyncio.create_task(watch())
    await run_until(nc, namespace, durable, handler, done, **FAST)
    await watcher
    dead = await dead_letters_for(nc, namespace, durable)
    assert len(dead) == 1
    assert dead[0].headers
    assert dead[0].headers["Poi-Dead-Consumer"] == durable
    assert dead[0].headers["Poi-Dead-Subject"] == subject
    assert "missing CloudEvents headers" in dead[0].headers["Poi-Dead-Reason"]
    assert dead[0].data == b"not json"
    assert "bad-1" not in seen


async def test_a_handlers_poison_verdict_is_dead_lettered_at_once(nc: NATS, namespace: str) -> None:
    durable = f"refuse-{uuid.uuid4().hex[:8]}"
    event_id = await publish_status(nc, namespace)
    attempts: list[str] = []
    done = asyncio.Event()

    async def refuses(event: Event) -> None:
        if event.id == event_id:
            attempts.append(event.id)
            raise PoisonMessage("point is unknown for good")

    async def watch() -> None:
        await eventually(lambda: _nonempty(dead_letters_of(nc, namespace, durable, event_id)))
        done.set()

    watcher = asyncio.create_task(watch())
    await run_until(nc, namespace, durable, refuses, done, **FAST)
    await watcher
    assert attempts == [event_id]
    (dead,) = await dead_letters_of(nc, namespace, durable, event_id)
    assert dead.headers and dead.headers["Poi-Dead-Reason"] == "poison: point is unknown for good"
    await settled(nc, namespace, durable)


async def test_unexpected_failures_past_the_budget_are_dead_lettered(nc: NATS, namespace: str) -> None:
    durable = f"budget-{uuid.uuid4().hex[:8]}"
    event_id = await publish_status(nc, namespace)
    attempts: list[str] = []
    done = asyncio.Event()

    async def always_fails(event: Event) -> None:
        if event.id == event_id:
            attempts.append(event.id)
            raise RuntimeError("bug")

    async def watch() -> None:
        await eventually(lambda: _nonempty(dead_letters_of(nc, namespace, durable, event_id)))
        done.set()

    watcher = asyncio.create_task(watch())
    await run_until(nc, namespace, durable, always_fails, done, poison_budget=3, **FAST)
    await watcher
    assert len(attempts) == 3
    (dead,) = await dead_letters_of(nc, namespace, durable, event_id)
    assert dead.headers and dead.headers["ce-id"] == event_id
    assert "failed 3 times" in dead.headers["Poi-Dead-Reason"]
    await settled(nc, namespace, durable)


async def test_changed_consumer_settings_reach_an_existing_durable(nc: NATS, namespace: str) -> None:
    durable = f"config-{uuid.uuid4().hex[:8]}"
    js = nc.jetstream()
    stream = STATUS.stream_name(namespace)
    # The durable as the previous release left it: the server gave up after 8 deliveries.
    old = api.ConsumerConfig(
        durable_name=durable,
        ack_policy=api.AckPolicy.EXPLICIT,
        max_deliver=8,
        ack_wait=30,
        max_ack_pending=256,
        filter_subject=STATUS.wildcard(namespace),
    )
    await js.add_consumer(stream, old)
    await publish_status(nc, namespace)
    done = asyncio.Event()

    async def handler(event: Event) -> None:
        done.set()

    await run_until(nc, namespace, durable, handler, done, batch=5, ack_wait_s=7.0)

    config = (await js.consumer_info(stream, durable)).config
    assert config.ack_wait == 7.0
    assert config.max_ack_pending == 20
    assert config.max_deliver == -1


async def test_a_failing_dead_letter_write_loses_nothing(
    nc: NATS, own_namespace: str, caplog: pytest.LogCaptureFixture
) -> None:
    namespace, durable = own_namespace, "lastdelivery"
    js = nc.jetstream()
    event_id = await publish_status(nc, namespace)
    await js.delete_stream(DEAD_LETTERS.stream_name(namespace))
    attempts: list[str] = []
    done = asyncio.Event()

    async def always_fails(event: Event) -> None:
        attempts.append(event.id)
        raise RuntimeError("bug")

    async def bring_dead_letters_back() -> None:
        # Only once the runner has tried, and failed, to write the dead letter on the budget's last attempt.
        await eventually(lambda: _logged(caplog, "cannot dead-letter"))
        await jetstream.ensure_streams(js, namespace)
        await eventually(lambda: has_dead_letter(nc, namespace, durable))
        done.set()

    with caplog.at_level(logging.ERROR, logger="poi_shared.jetstream"):
        restorer = asyncio.create_task(bring_dead_letters_back())
        await run_until(nc, namespace, durable, always_fails, done, poison_budget=2, **FAST)
        await restorer

    assert attempts == [event_id] * 2
    (dead,) = await dead_letters_for(nc, namespace, durable)
    assert dead.headers and dead.headers["ce-id"] == event_id
    await settled(nc, namespace, durable)


async def _nonempty(found: Awaitable[list[Msg]]) -> bool:
    return bool(await found)


async def _logged(caplog: pytest.LogCaptureFixture, text: str) -> bool:
    return any(text in record.getMessage() for record in caplog.records)


async def test_a_batch_handler_takes_a_fetchs_events_together_in_order(nc: NATS, own_namespace: str) -> None:
    durable = f"batch-{uuid.uuid4().hex[:8]}"
    point_id = uuid.uuid4()
    published = [await publish_status(nc, own_namespace, version=v, point_id=point_id) for v in range(1, 6)]
    batches: list[list[str]] = []
    one_at_a_time: list[str] = []
    done = asyncio.Event()

    async def together(events: Any) -> None:
        batches.append([e.id for e in events])
        if sum(map(len, batches)) == len(published):
            done.set()

    async def alone(event: Event) -> None:
        one_at_a_time.append(event.id)
        if len(one_at_a_time) + sum(map(len, batches)) == len(published):
            done.set()

    await run_until(nc, own_namespace, durable, alone, done, batch_handler=together, **FAST)
    assert [i for batch in batches for i in batch] + one_at_a_time == published
    assert len(batches) >= 1 and len(batches[0]) > 1, "published before the consumer started: fetched together"
    info = await settled(nc, own_namespace, durable)
    assert info.num_redelivered == 0


async def test_a_failed_batch_is_handled_one_event_at_a_time_in_order(nc: NATS, own_namespace: str) -> None:
    durable = f"batchfail-{uuid.uuid4().hex[:8]}"
    point_id = uuid.uuid4()
    published = [await publish_status(nc, own_namespace, version=v, point_id=point_id) for v in range(1, 5)]
    tried: list[int] = []
    handled: list[str] = []
    done = asyncio.Event()

    async def together(events: Any) -> None:
        tried.append(len(events))
        raise ValueError("one of them is bad")

    async def alone(event: Event) -> None:
        handled.append(event.id)
        if len(handled) == len(published):
            done.set()

    await run_until(nc, own_namespace, durable, alone, done, batch_handler=together, **FAST)
    assert tried and tried[0] > 1
    assert handled == published
    await settled(nc, own_namespace, durable)
    assert not await has_dead_letter(nc, own_namespace, durable)
