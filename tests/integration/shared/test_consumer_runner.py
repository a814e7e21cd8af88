"""The consumer runner acks after the handler, retries transient failures, dead-letters poison."""

import asyncio
import uuid
from datetime import UTC, datetime

from nats.aio.client import Client as NATS

from poi_shared import jetstream
from poi_shared.contracts import DEAD_LETTERS, STATUS, STATUS_CHANGED, OpenState, StatusState
from poi_shared.envelope import Event, build_message


async def publish_status(nc: NATS, namespace: str, version: int = 1) -> str:
    state = StatusState(
        point_id=uuid.uuid4(), version=version, state=OpenState.open, reported_at=datetime.now(UTC), reported_by="op"
    )
    message = build_message(
        namespace=namespace, event_type=STATUS_CHANGED, key=str(state.point_id), data=state, source="/test"
    )
    await nc.jetstream().publish(message.subject, message.body, headers=message.headers)
    return message.event_id


async def run_until(nc: NATS, namespace: str, durable: str, handler, done: asyncio.Event, **kwargs) -> None:  # type: ignore[no-untyped-def]
    stop = asyncio.Event()
    task = asyncio.create_task(
        jetstream.run_consumer(
            nc.jetstream(), namespace=namespace, stream=STATUS, durable=durable, handler=handler, stop=stop, **kwargs
        )
    )
    try:
        await asyncio.wait_for(done.wait(), 30)
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)


async def dead_letters_for(nc: NATS, namespace: str, durable: str) -> list:  # type: ignore[type-arg]
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


async def test_handler_failures_are_retried_then_acked(nc: NATS, namespace: str) -> None:
    durable = f"retry-{uuid.uuid4().hex[:8]}"
    event_id = await publish_status(nc, namespace)
    attempts: list[str] = []
    done = asyncio.Event()

    async def flaky(event: Event) -> None:
        if event.id != event_id:
            return
        attempts.append(event.id)
        if len(attempts) < 3:
            raise ConnectionError("database away")
        done.set()

    await run_until(nc, namespace, durable, flaky, done, backoff_s=(0.1,))
    assert attempts == [event_id] * 3
    await asyncio.sleep(0.2)  # let the final ack reach the server
    info = await nc.jetstream().consumer_info(STATUS.stream_name(namespace), durable)
    assert info.num_ack_pending == 0 and info.num_pending == 0


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
        while not await _has_dead_letter(nc, namespace, durable):
            await asyncio.sleep(0.2)
        done.set()

    watcher = asyncio.create_task(watch())
    await run_until(nc, namespace, durable, handler, done)
    await watcher
    dead = await dead_letters_for(nc, namespace, durable)
    assert len(dead) == 1
    assert dead[0].headers["Poi-Dead-Consumer"] == durable
    assert "missing CloudEvents headers" in dead[0].headers["Poi-Dead-Reason"]
    assert dead[0].data == b"not json"
    assert "bad-1" not in seen


async def test_message_failing_max_deliver_times_is_dead_lettered(nc: NATS, namespace: str) -> None:
    durable = f"maxdel-{uuid.uuid4().hex[:8]}"
    event_id = await publish_status(nc, namespace)
    attempts: list[str] = []
    done = asyncio.Event()

    async def always_fails(event: Event) -> None:
        if event.id == event_id:
            attempts.append(event.id)
            raise RuntimeError("bug")

    async def watch() -> None:
        while not await dead_letters_of(nc, namespace, durable, event_id):
            await asyncio.sleep(0.2)
        done.set()

    watcher = asyncio.create_task(watch())
    await run_until(nc, namespace, durable, always_fails, done, max_deliver=3, backoff_s=(0.1,))
    await watcher
    assert len(attempts) == 3
    dead = await dead_letters_of(nc, namespace, durable, event_id)
    assert len(dead) == 1
    assert "failed 3 times" in dead[0].headers["Poi-Dead-Reason"]


async def dead_letters_of(nc: NATS, namespace: str, durable: str, event_id: str) -> list:  # type: ignore[type-arg]
    return [m for m in await dead_letters_for(nc, namespace, durable) if m.headers.get("ce-id") == event_id]


async def _has_dead_letter(nc: NATS, namespace: str, durable: str) -> bool:
    info = await nc.jetstream().stream_info(
        DEAD_LETTERS.stream_name(namespace), subjects_filter=DEAD_LETTERS.subject(namespace, durable)
    )
    return bool(info.state.subjects)
