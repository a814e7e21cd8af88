"""`poi deadletters`: list, show and replay against a real broker; a replay reaches only its own consumer."""

import asyncio
import json
import secrets
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import TypeVar

import nats
import pytest
from nats.aio.client import Client as NATS
from nats.js import JetStreamContext
from typer.testing import CliRunner

from poi_cli import deadletters, stack
from poi_cli.main import app as poi
from poi_shared import jetstream
from poi_shared.app import Supervisor
from poi_shared.contracts import DEAD_LETTERS, REPLAY, STATUS, STATUS_CHANGED, STREAMS, OpenState, StatusState
from poi_shared.envelope import Event, OutgoingMessage, PoisonMessage, build_message
from poi_shared.settings import ServiceSettings

T = TypeVar("T")


async def eventually(check: Callable[[], Awaitable[bool]], bound_s: float = 30.0) -> None:
    async with asyncio.timeout(bound_s):
        while not await check():
            await asyncio.sleep(0.05)


def status_event(namespace: str) -> OutgoingMessage:
    state = StatusState(
        point_id=uuid.uuid4(), version=1, state=OpenState.open, reported_at=datetime.now(UTC), reported_by="op"
    )
    return build_message(
        namespace=namespace, event_type=STATUS_CHANGED, key=str(state.point_id), data=state, source="/t"
    )


async def replays_waiting(js: JetStreamContext, namespace: str, consumer: str) -> int:
    info = await js.stream_info(REPLAY.stream_name(namespace), subjects_filter=REPLAY.subject(namespace, consumer))
    return sum((info.state.subjects or {}).values())


async def test_a_fixed_consumer_handles_its_replayed_dead_letter_once(nc: NATS, own_namespace: str) -> None:
    namespace, js = own_namespace, nc.jetstream()
    settings = ServiceSettings(namespace=namespace, consumer_retry_initial_s=0.02, consumer_retry_max_s=0.1)
    event = status_event(namespace)
    await js.publish(event.subject, event.body, headers=event.headers)
    original = await js.get_last_msg(STATUS.stream_name(namespace), event.subject)
    broken = True
    handled: list[tuple[str, str]] = []

    def handler_of(durable: str) -> Callable[[Event], Awaitable[None]]:
        async def handle(event: Event) -> None:
            if broken:
                raise PoisonMessage("cannot handle this yet")
            handled.append((durable, event.id))

        return handle

    supervisor = Supervisor()
    for durable in ("notify-status", "audit-status"):
        supervisor.consume(js, settings, stream=STATUS, durable=durable, handler=handler_of(durable))
    try:

        async def both_gave_up() -> bool:
            return len(await deadletters.list_dead_letters(js, namespace)) == 2

        await eventually(both_gave_up)
        (dead,) = await deadletters.list_dead_letters(js, namespace, consumer="notify-status")
        assert (dead.consumer, dead.subject, dead.ce_type) == ("notify-status", event.subject, STATUS_CHANGED.type)
        assert dead.reason == "poison: cannot handle this yet"
        shown = await deadletters.get_dead_letter(js, namespace, dead.seq)
        assert shown.headers["ce-id"] == event.event_id
        assert shown.body == original.data

        broken = False  # the bug is fixed and deployed
        await deadletters.replay(js, namespace, dead.seq)

        async def handled_and_acked() -> bool:
            return bool(handled) and await replays_waiting(js, namespace, "notify-status") == 0

        await eventually(handled_and_acked)
    finally:
        await supervisor.close()

    assert handled == [("notify-status", event.event_id)]  # once, and only by the consumer it was replayed to
    assert await deadletters.list_dead_letters(js, namespace, consumer="notify-status") == []
    assert len(await deadletters.list_dead_letters(js, namespace, consumer="audit-status")) == 1
    # Never republished to its subject, whose last message search replicas rebuild from.
    assert (await js.get_last_msg(STATUS.stream_name(namespace), event.subject)).seq == original.seq
    with pytest.raises(LookupError):
        await deadletters.replay(js, namespace, dead.seq)


async def test_list_pages_through_dead_letters_oldest_first(nc: NATS, own_namespace: str) -> None:
    namespace, js = own_namespace, nc.jetstream()
    seqs = [await _dead_letter(js, namespace, "a-consumer", i) for i in range(5)]
    await _dead_letter(js, namespace, "b-consumer", 99)

    first = await deadletters.list_dead_letters(js, namespace, consumer="a-consumer", limit=2)
    rest = await deadletters.list_dead_letters(js, namespace, consumer="a-consumer", after=first[-1].seq, limit=10)

    assert [d.seq for d in first + rest] == seqs
    assert {d.consumer for d in first + rest} == {"a-consumer"}
    assert len(await deadletters.list_dead_letters(js, namespace)) == 6


def test_the_poi_command_lists_shows_and_replays_all_of_a_consumer(nats_url: str) -> None:
    namespace = f"c{secrets.token_hex(4)}"
    asyncio.run(_with_streams(nats_url, namespace, lambda js: _dead_letter(js, namespace, "notify-status", 1)))
    asyncio.run(_with_streams(nats_url, namespace, lambda js: _dead_letter(js, namespace, "notify-status", 2)))
    asyncio.run(_with_streams(nats_url, namespace, lambda js: _dead_letter(js, namespace, "status-points", 3)))
    runner = CliRunner()
    env = {"POI_NATS_URL": nats_url, "POI_NAMESPACE": namespace, "COLUMNS": "250"}
    try:
        listed = runner.invoke(poi, ["deadletters", "list", "--consumer", "notify-status"], env=env)
        shown = runner.invoke(poi, ["deadletters", "show", "2"], env=env)
        replayed = runner.invoke(poi, ["deadletters", "replay", "--all", "--consumer", "notify-status"], env=env)
        after = runner.invoke(poi, ["deadletters", "list", "--consumer", "notify-status"], env=env)
        refused = runner.invoke(poi, ["deadletters", "replay"], env=env)
        waiting = asyncio.run(_with_streams(nats_url, namespace, lambda js: _replayed(js, namespace, "notify-status")))
    finally:
        asyncio.run(_drop_streams(nats_url, namespace))

    assert listed.exit_code == 0, listed.output
    assert f"{namespace}.status.point-1" in listed.output and f"{namespace}.status.point-2" in listed.output
    assert "point-3" not in listed.output
    assert "poison: reason 1" in listed.output
    assert shown.exit_code == 0, shown.output
    assert "ce-id" in shown.output and "event-2" in shown.output and '"note": 2' in shown.output
    assert replayed.exit_code == 0 and "Replayed 2 dead letters to notify-status" in replayed.output
    assert "No dead letters" in after.output
    assert refused.exit_code != 0
    # Back to that consumer, original headers and body, marked with the subject they were first published on.
    assert [(h["ce-id"], h[jetstream.ORIGINAL_SUBJECT], body) for h, body in waiting] == [
        ("event-1", f"{namespace}.status.point-1", {"note": 1}),
        ("event-2", f"{namespace}.status.point-2", {"note": 2}),
    ]
    assert all(not any(k.startswith("Poi-Dead-") for k in h) for h, _ in waiting)


@pytest.fixture
def nats_url(infra: stack.Infrastructure) -> str:
    return infra.nats_url


async def _dead_letter(js: JetStreamContext, namespace: str, consumer: str, n: int) -> int:
    """Store a dead letter as a runner would, returning its sequence."""
    headers = {
        "ce-id": f"event-{n}",
        "ce-type": STATUS_CHANGED.type,
        jetstream.DEAD_CONSUMER: consumer,
        jetstream.DEAD_REASON: f"poison: reason {n}",
        jetstream.DEAD_SUBJECT: f"{namespace}.status.point-{n}",
        "Nats-Msg-Id": f"{consumer}:test:{n}",
    }
    ack = await js.publish(DEAD_LETTERS.subject(namespace, consumer), json.dumps({"note": n}).encode(), headers=headers)
    return ack.seq


async def _replayed(js: JetStreamContext, namespace: str, consumer: str) -> list[tuple[dict[str, str], object]]:
    """The replays waiting for a consumer (read without consuming them): headers and decoded body, oldest first."""
    found: list[tuple[dict[str, str], object]] = []
    seq = 1
    while True:
        try:
            raw = await js.get_msg(
                REPLAY.stream_name(namespace), seq=seq, subject=REPLAY.subject(namespace, consumer), next=True
            )
        except nats.js.errors.NotFoundError:
            return found
        found.append((dict(raw.headers or {}), json.loads(raw.data or b"")))
        seq = (raw.seq or 0) + 1


async def _with_streams(url: str, namespace: str, work: Callable[[JetStreamContext], Awaitable[T]]) -> T:
    conn = await nats.connect(url)
    try:
        js = conn.jetstream()
        await jetstream.ensure_streams(js, namespace)
        return await work(js)
    finally:
        await conn.close()


async def _drop_streams(url: str, namespace: str) -> None:
    conn = await nats.connect(url)
    try:
        for spec in STREAMS:
            try:
                await conn.jetstream().delete_stream(spec.stream_name(namespace))
            except nats.js.errors.NotFoundError:
                pass
    finally:
        await conn.close()
