"""A PostgreSQL outage much longer than the poison budget loses no event and dead-letters none."""

import asyncio
import secrets
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from nats.aio.client import Client as NATS

from poi_cli import stack
from poi_shared import db, inbox, jetstream
from poi_shared.contracts import DEAD_LETTERS, STATUS, STATUS_CHANGED, OpenState, StatusState
from poi_shared.db import SHARED_MIGRATIONS
from poi_shared.envelope import Event, build_message
from poi_shared.errors import DEPENDENCY_ERRORS
from tests.support.tcp_proxy import TcpProxy

POISON_BUDGET = 2


async def eventually(check: Callable[[], Awaitable[bool]], bound_s: float = 60.0) -> None:
    async with asyncio.timeout(bound_s):
        while not await check():
            await asyncio.sleep(0.05)


async def publish(nc: NATS, namespace: str, point_id: uuid.UUID) -> str:
    state = StatusState(
        point_id=point_id, version=1, state=OpenState.open, reported_at=datetime.now(UTC), reported_by="op"
    )
    message = build_message(namespace=namespace, event_type=STATUS_CHANGED, key=str(point_id), data=state, source="/t")
    await nc.jetstream().publish(message.subject, message.body, headers=message.headers)
    return message.event_id


async def test_a_postgresql_outage_longer_than_the_old_budget_loses_nothing(
    infra: stack.Infrastructure, namespace: str, own_namespace: str, nc: NATS
) -> None:
    name = f"{namespace}_outage_{secrets.token_hex(3)}"
    await db.ensure_database(infra.database_url, name)
    url = db.database_url(infra.database_url, name)
    await db.migrate(url, [("shared", SHARED_MIGRATIONS)])
    direct = await db.create_pool(url, timeout_s=10, min_size=1, max_size=2)
    # No unique key: a second write of the same event would show up as a second row.
    await direct.execute("CREATE TABLE stored (event_id text NOT NULL)")
    durable = "outage"
    failures = 0

    async with TcpProxy.to(infra.database_url) as proxy:
        pool = await db.create_pool(proxy.through(url), timeout_s=10, acquire_timeout_s=1.0)

        async def store(event: Event) -> None:
            nonlocal failures
            try:
                async with db.connection(pool) as conn, conn.transaction():
                    if await inbox.claim(conn, consumer=durable, event_id=event.id):
                        await conn.execute("INSERT INTO stored (event_id) VALUES ($1)", event.id)
            except DEPENDENCY_ERRORS:
                failures += 1
                raise

        sent = [await publish(nc, own_namespace, uuid.uuid4()) for _ in range(5)]
        await proxy.cut()
        stop = asyncio.Event()
        consumer = asyncio.create_task(
            jetstream.run_consumer(
                nc.jetstream(),
                namespace=own_namespace,
                stream=STATUS,
                durable=durable,
                handler=store,
                stop=stop,
                poison_budget=POISON_BUDGET,
                retry_initial_s=0.02,
                retry_max_s=0.1,
                ack_wait_s=3.0,
            )
        )
        try:
            sent += [await publish(nc, own_namespace, uuid.uuid4()) for _ in range(5)]
            # Three times longer than the old runner lasted: it dead-lettered after 8 failed deliveries.
            await eventually(lambda: _at_least(lambda: failures, 3 * 8))
            await proxy.restore()

            async def all_stored() -> bool:
                return await direct.fetchval("SELECT count(*) FROM stored") >= len(sent)

            await eventually(all_stored)
            info_ok = await _settled(nc, own_namespace, durable)
        finally:
            stop.set()
            await asyncio.wait_for(consumer, 10)
            await pool.close()

    rows = [r["event_id"] for r in await direct.fetch("SELECT event_id FROM stored ORDER BY event_id")]
    await direct.close()
    assert rows == sorted(sent)  # every event, exactly once
    assert info_ok
    dead = await nc.jetstream().stream_info(
        DEAD_LETTERS.stream_name(own_namespace), subjects_filter=DEAD_LETTERS.subject(own_namespace, durable)
    )
    assert not dead.state.subjects  # nothing dead-lettered


async def _at_least(value: Callable[[], int], threshold: int) -> bool:
    return value() >= threshold


async def _settled(nc: NATS, namespace: str, durable: str) -> bool:
    """True once the broker holds no message of the consumer unacknowledged or undelivered."""
    js = nc.jetstream()

    async def acked() -> bool:
        info = await js.consumer_info(STATUS.stream_name(namespace), durable)
        return info.num_ack_pending == 0 and info.num_pending == 0

    await eventually(acked)
    return True
