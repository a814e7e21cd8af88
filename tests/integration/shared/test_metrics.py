"""/metrics and /readyz read the broker and the outbox at scrape time: lag, redeliveries, dead letters, backlog."""

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime

import asyncpg
from fastapi import FastAPI
from nats.aio.client import Client as NATS
from nats.js import api

from poi_shared import metrics
from poi_shared.app import build_app, readiness_checks
from poi_shared.contracts import DEAD_LETTERS, STATUS, STATUS_CHANGED, OpenState, StatusState
from poi_shared.envelope import build_message
from poi_shared.outbox import enqueue
from tests.integration.inprocess import serving
from tests.prometheus import samples


def status_message(namespace: str, point_id: uuid.UUID, version: int):  # type: ignore[no-untyped-def]
    state = StatusState(
        point_id=point_id, version=version, state=OpenState.open, reported_at=datetime.now(UTC), reported_by="op"
    )
    return build_message(namespace=namespace, event_type=STATUS_CHANGED, key=str(point_id), data=state, source="/test")


def app_watching(broker: metrics.Broker, pool: asyncpg.Pool) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.readiness = readiness_checks(pool=pool, broker=broker)
        metrics.track_broker(app.state.metrics, broker)
        metrics.track_outbox(app.state.metrics, pool)
        yield

    return build_app(service="test", title="t", description="d", lifespan=lifespan, routers=[])


async def test_published_but_unconsumed_events_show_as_pending_and_redelivered(
    nc: NATS, namespace: str, shared_db: asyncpg.Pool
) -> None:
    js = nc.jetstream()
    point_id = uuid.uuid4()
    durable = f"lag-{uuid.uuid4().hex[:8]}"
    stream = STATUS.stream_name(namespace)
    # A durable consumer of this test's point only, so other tests' events do not count.
    await js.add_consumer(
        stream,
        api.ConsumerConfig(
            durable_name=durable,
            ack_policy=api.AckPolicy.EXPLICIT,
            filter_subject=STATUS.subject(namespace, str(point_id)),
        ),
    )
    for version in range(1, 11):
        message = status_message(namespace, point_id, version)
        await js.publish(message.subject, message.body, headers=message.headers)
    # One is delivered and refused; fetch until it comes again, leaving everything fetched unacknowledged.
    sub = await js.pull_subscribe_bind(durable=durable, stream=stream)
    (first,) = await sub.fetch(1, timeout=5)
    await first.nak()
    fetched = {first.metadata.sequence.stream}
    redelivered = False
    while not redelivered:
        (msg,) = await sub.fetch(1, timeout=5)
        fetched.add(msg.metadata.sequence.stream)
        redelivered = msg.metadata.num_delivered == 2
    await js.publish(DEAD_LETTERS.subject(namespace, durable), b"poison", headers={"Nats-Msg-Id": f"{durable}:dead-1"})
    async with shared_db.acquire() as conn:
        await enqueue(conn, status_message(namespace, point_id, 4))

    broker = metrics.Broker(nc, js, namespace, consumers=[metrics.Consumer(STATUS, durable)])
    async with serving(app_watching(broker, shared_db)) as client:
        scrape = samples((await client.get("/metrics")).text)
        ready = await client.get("/readyz")
    await sub.unsubscribe()

    labels = (("consumer", durable), ("stream", stream))
    assert scrape[("poi_consumer_pending_messages", labels)] == 10 - len(fetched) > 0
    assert scrape[("poi_consumer_ack_pending_messages", labels)] == len(fetched)
    assert scrape[("poi_consumer_redelivered_messages", labels)] == 1
    assert scrape[("poi_dead_letters", (("consumer", durable),))] == 1
    assert scrape[("poi_outbox_pending_messages", ())] == 1
    assert scrape[("poi_outbox_oldest_age_seconds", ())] >= 0
    assert scrape[("poi_nats_connected", ())] == 1
    for source in ("consumers", "dead_letters", "outbox"):
        assert scrape[("poi_metrics_source_up", (("source", source),))] == 1
    assert ready.status_code == 200
    assert ready.json()["consumers"] == {
        durable: {"pending": 10 - len(fetched), "ack_pending": len(fetched), "redelivered": 1}
    }
    assert ready.json()["checks"] == {"postgresql": "ok", "nats": "ok"}


async def test_an_empty_outbox_has_no_backlog_and_no_age(nc: NATS, namespace: str, shared_db: asyncpg.Pool) -> None:
    async with serving(app_watching(metrics.Broker(nc, nc.jetstream(), namespace), shared_db)) as client:
        scrape = samples((await client.get("/metrics")).text)
    assert scrape[("poi_outbox_pending_messages", ())] == 0
    assert scrape[("poi_outbox_oldest_age_seconds", ())] == 0
