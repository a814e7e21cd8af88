"""The outbox relay publishes what was committed, in order, once, and keeps what the broker refused."""

import asyncio
import uuid
from datetime import UTC, datetime

import asyncpg
import nats
import pytest
from nats.aio.client import Client as NATS
from nats.js import api
from nats.js.errors import NotFoundError

from poi_cli import stack
from poi_shared import db, outbox
from poi_shared.contracts import STATUS, STATUS_CHANGED, OpenState, StatusState
from poi_shared.envelope import OutgoingMessage, build_message, parse_message
from tests.support.tcp_proxy import TcpProxy


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


async def test_a_failure_within_one_subject_holds_back_its_later_events(
    shared_db: asyncpg.Pool, nc: NATS, namespace: str
) -> None:
    js = nc.jetstream()
    point_id, other_point_id = uuid.uuid4(), uuid.uuid4()
    first = status_message(namespace, point_id, 1)
    # The broker refuses this one (it expects another stream), as it would any message it cannot store.
    refused = OutgoingMessage(
        first.event_id, first.subject, {**first.headers, "Nats-Expected-Stream": "NOPE"}, first.body
    )
    later = [status_message(namespace, point_id, v) for v in (2, 3)]
    elsewhere = status_message(namespace, other_point_id, 1)
    async with shared_db.acquire() as conn, conn.transaction():
        for m in (refused, *later, elsewhere):
            await outbox.enqueue(conn, m)

    with pytest.raises(ConnectionError, match="1 of 4"):
        await outbox.relay_once(shared_db, js, batch=100)

    left = await shared_db.fetch("SELECT event_id FROM outbox ORDER BY id")
    assert [r["event_id"] for r in left] == [refused.event_id, *(m.event_id for m in later)]
    with pytest.raises(NotFoundError):  # nothing of the held-back subject reached the stream
        await js.get_last_msg(STATUS.stream_name(namespace), first.subject)
    stored = await js.get_last_msg(STATUS.stream_name(namespace), elsewhere.subject)
    assert stored.headers and stored.headers["ce-id"] == elsewhere.event_id
    await shared_db.execute("DELETE FROM outbox")


async def test_the_relay_holds_no_transaction_while_the_broker_stalls(
    shared_db: asyncpg.Pool, infra: stack.Infrastructure, namespace: str
) -> None:
    messages = [status_message(namespace, uuid.uuid4(), 1) for _ in range(3)]
    async with shared_db.acquire() as conn, conn.transaction():
        for m in messages:
            await outbox.enqueue(conn, m)
    async with TcpProxy.to(infra.nats_url) as proxy:
        stalling = await nats.connect(proxy.through(infra.nats_url))
        js = stalling.jetstream()
        proxy.stall()
        # Each publish alone would wait a minute; the batch as a whole gives up after its own bound.
        relay = asyncio.create_task(
            outbox.relay_once(shared_db, js, batch=100, batch_timeout_s=1.0, publish_timeout_s=60.0)
        )
        async with asyncio.timeout(30):
            while proxy.held_bytes == 0:  # the relay has sent its publishes; the broker says nothing
                await asyncio.sleep(0.01)
        open_transactions = await shared_db.fetchval(
            """SELECT count(*) FROM pg_stat_activity
               WHERE datname = current_database() AND pid <> pg_backend_pid() AND xact_start IS NOT NULL"""
        )
        late = status_message(namespace, uuid.uuid4(), 1)
        async with shared_db.acquire() as conn, conn.transaction():
            await conn.execute("SET LOCAL lock_timeout = '10s'")
            await outbox.enqueue(conn, late)
        with pytest.raises(ConnectionError, match="0 of 3"):
            await asyncio.wait_for(relay, 30)
        assert await shared_db.fetchval("SELECT count(*) FROM outbox") == 4  # nothing acknowledged, nothing lost

        proxy.resume()  # the stalled publishes arrive late; the next batch publishes them again
        assert await outbox.relay_once(shared_db, js, batch=100) == 4
        await stalling.close()

    assert open_transactions == 0
    assert await shared_db.fetchval("SELECT count(*) FROM outbox") == 0
    for m in (*messages, late):  # stored once each: the broker dropped the repeats by Nats-Msg-Id
        info = await nc_stream_info(infra, namespace, m.subject)
        assert info.state.subjects == {m.subject: 1}


async def test_only_one_relay_works_a_database_at_a_time(shared_db: asyncpg.Pool, nc: NATS, namespace: str) -> None:
    js = nc.jetstream()
    point_id = uuid.uuid4()
    messages = [status_message(namespace, point_id, v) for v in range(1, 21)]
    async with shared_db.acquire() as holder:
        # Another replica's relay is at work.
        db.holds_session_state(holder)
        await holder.execute("SELECT pg_advisory_lock($1)", outbox.RELAY_LOCK_KEY)
        async with shared_db.acquire() as conn, conn.transaction():
            await outbox.enqueue(conn, messages[0])
        assert await outbox.relay_once(shared_db, js, batch=100) == 0
        assert await shared_db.fetchval("SELECT count(*) FROM outbox") == 1

    stop = asyncio.Event()
    relays = [asyncio.create_task(outbox.run_relay(shared_db, js, stop=stop, batch=3)) for _ in range(2)]
    try:
        async with shared_db.acquire() as conn, conn.transaction():
            for m in messages[1:]:
                await outbox.enqueue(conn, m)
        async with asyncio.timeout(30):
            while await shared_db.fetchval("SELECT count(*) FROM outbox"):
                await asyncio.sleep(0.05)
    finally:
        stop.set()
        await asyncio.wait_for(asyncio.gather(*relays), 10)

    sub = await js.pull_subscribe(STATUS.subject(namespace, str(point_id)), stream=STATUS.stream_name(namespace))
    received = await sub.fetch(20, timeout=5)
    assert [m.headers["ce-id"] for m in received if m.headers] == [m.event_id for m in messages]


async def nc_stream_info(infra: stack.Infrastructure, namespace: str, subject: str) -> api.StreamInfo:
    conn = await nats.connect(infra.nats_url)
    try:
        return await conn.jetstream().stream_info(STATUS.stream_name(namespace), subjects_filter=subject)
    finally:
        await conn.close()


async def test_commits_do_not_notify(shared_db: asyncpg.Pool) -> None:
    # A NOTIFY at commit takes PostgreSQL's global notify-queue lock: every committing writer would queue on it.
    assert await shared_db.fetchval("SELECT count(*) FROM pg_trigger WHERE tgrelid = 'outbox'::regclass") == 0


async def test_relay_is_woken_in_process_and_polls_for_rows_committed_elsewhere(
    shared_db: asyncpg.Pool, nc: NATS, namespace: str
) -> None:
    js = nc.jetstream()
    point_id = uuid.uuid4()
    messages = [status_message(namespace, point_id, v) for v in range(1, 5)]
    stop = asyncio.Event()
    woken = asyncio.create_task(outbox.run_relay(shared_db, js, stop=stop, poll_s=3600))
    try:
        # Woken by committed(): it never polls in this test's lifetime.
        async with asyncio.timeout(30):
            while not await shared_db.fetchval(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objid = $1"
                " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
                outbox.RELAY_LOCK_KEY,
            ):
                await asyncio.sleep(0.05)
        async with shared_db.acquire() as conn, conn.transaction():
            await outbox.enqueue(conn, messages[0])
        outbox.committed()
        async with asyncio.timeout(30):
            while await shared_db.fetchval("SELECT count(*) FROM outbox"):
                await asyncio.sleep(0.05)
    finally:
        stop.set()
        await asyncio.wait_for(woken, 10)

    # Committed by another process (nothing wakes this one): found by polling.
    stop = asyncio.Event()
    polling = asyncio.create_task(outbox.run_relay(shared_db, js, stop=stop, poll_s=0.05))
    try:
        async with asyncio.timeout(30):
            while await shared_db.fetchval("SELECT count(*) FROM outbox"):
                await asyncio.sleep(0.05)
        async with shared_db.acquire() as conn, conn.transaction():
            for m in messages[1:]:
                await outbox.enqueue(conn, m)
        async with asyncio.timeout(30):
            while await shared_db.fetchval("SELECT count(*) FROM outbox"):
                await asyncio.sleep(0.05)
    finally:
        stop.set()
        await asyncio.wait_for(polling, 10)

    sub = await js.pull_subscribe(STATUS.subject(namespace, str(point_id)), stream=STATUS.stream_name(namespace))
    received = await sub.fetch(4, timeout=5)
    assert [m.headers["ce-id"] for m in received if m.headers] == [m.event_id for m in messages]
