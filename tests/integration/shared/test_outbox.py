"""The outbox relay publishes what was committed, in order, once, and keeps what the broker refused."""

import uuid
from datetime import UTC, datetime

import asyncpg
from nats.aio.client import Client as NATS

from poi_shared import outbox
from poi_shared.contracts import STATUS, STATUS_CHANGED, OpenState, StatusState
from poi_shared.envelope import OutgoingMessage, build_message, parse_message


def status_message(namespace: str, point_id: uuid.UUID, version: int) -> OutgoingMessage:
    state = StatusState(
        point_id=point_id,
        version=version,
        state=OpenState.open if version % 2 else OpenState.closed,
        reported_at=datetime.now(UTC),
        reported_by="op-1",
    )
    return build_message(namespace=namespace, event_type=STATUS_CHANGED, key=str(point_id), data=state, source="/test")


async def test_relay_publishes_committed_messages_in_order(shared_db: asyncpg.Pool, nc: NATS, namespace: str) -> None:
    js = nc.jetstream()
    point_id = uuid.uuid4()
    messages = [status_message(namespace, point_id, v) for v in range(1, 6)]
    async with shared_db.acquire() as conn, conn.transaction():
        for m in messages:
            await outbox.enqueue(conn, m)

    assert await outbox.relay_once(shared_db, js, batch=100) == 5

    assert await shared_db.fetchval("SELECT count(*) FROM outbox") == 0
    sub = await js.pull_subscribe(STATUS.subject(namespace, str(point_id)), stream=STATUS.stream_name(namespace))
    received = await sub.fetch(5, timeout=5)
    events = [parse_message(m.headers, m.data) for m in received]
    assert [e.id for e in events] == [m.event_id for m in messages]
    assert [e.data.version for e in events] == [1, 2, 3, 4, 5]  # type: ignore[attr-defined]
    assert all(m.headers and m.headers["Nats-Msg-Id"] == m.headers["ce-id"] for m in received)


async def test_relay_rolled_back_transaction_publishes_nothing(
    shared_db: asyncpg.Pool, nc: NATS, namespace: str
) -> None:
    class Boom(Exception):
        pass

    try:
        async with shared_db.acquire() as conn, conn.transaction():
            await outbox.enqueue(conn, status_message(namespace, uuid.uuid4(), 1))
            raise Boom
    except Boom:
        pass
    assert await outbox.relay_once(shared_db, nc.jetstream(), batch=100) == 0


async def test_relay_keeps_what_the_broker_did_not_acknowledge(
    shared_db: asyncpg.Pool, nc: NATS, namespace: str
) -> None:
    good = status_message(namespace, uuid.uuid4(), 1)
    # No stream stores this subject, so the broker cannot acknowledge it.
    orphan = OutgoingMessage("orphan-1", f"{namespace}.nowhere.x", {"Nats-Msg-Id": "orphan-1"}, b"{}")
    async with shared_db.acquire() as conn, conn.transaction():
        await outbox.enqueue(conn, orphan)
        await outbox.enqueue(conn, good)

    try:
        await outbox.relay_once(shared_db, nc.jetstream(), batch=100)
    except ConnectionError as exc:
        assert "1 of 2" in str(exc)
    else:
        raise AssertionError("relay_once should report the refused message")

    left = await shared_db.fetch("SELECT event_id FROM outbox")
    assert [r["event_id"] for r in left] == ["orphan-1"]


async def test_publishing_the_same_event_twice_is_stored_once(nc: NATS, namespace: str) -> None:
    js = nc.jetstream()
    message = status_message(namespace, uuid.uuid4(), 1)
    first = await js.publish(message.subject, message.body, headers=message.headers)
    second = await js.publish(message.subject, message.body, headers=message.headers)
    assert second.duplicate and second.seq == first.seq
