"""Notify under faults, counted at Kannel's fakesmsc and in sms_messages: Kannel down, Redis lost, NATS killed."""

import re
import time
import uuid
from collections import Counter
from collections.abc import Iterator

import httpx
import pytest

from poi_cli import stack
from tests.faults.conftest import FaultStack, eventually, register
from tests.faults.sms import AREA, fetch, messages_to, sms_stack
from tests.support import kannel

pytestmark = [pytest.mark.e2e, pytest.mark.faults]
CODE = re.compile(r"Пункти незламності: код ([0-9]{6})\. Не ви\? Ігноруйте")
SETTLE_S = 3.0  # after the last expected SMS, long enough for a duplicate to show
# Limits per client address high enough for every number these tests subscribe from 127.0.0.1; retries enough to
# outlast a gateway restart.
NOTIFY = {"SUBSCRIBE_PER_IP_PER_HOUR": "1000", "CONFIRM_PER_IP_PER_HOUR": "1000", "SMS_MAX_ATTEMPTS": "50"}


@pytest.fixture(scope="module")
def sms(infra: stack.Infrastructure, namespace: str) -> Iterator[tuple[FaultStack, kannel.Kannel]]:
    """The fault stack with notify sending through Kannel."""
    with sms_stack(infra, f"{namespace}n", **NOTIFY) as running:
        yield running


def numbers(first: int, count: int) -> list[str]:
    return [f"+38067{first + n:07d}" for n in range(count)]


def subscribe(client: httpx.Client, running: FaultStack, e164: str, **target: object) -> httpx.Response:
    return client.post(
        f"{running.urls['notify']}/v1/subscriptions",
        json={"phone": e164, "language": "uk", **(target or {"area": AREA})},
    )


def code_of(gateway: kannel.Kannel, e164: str) -> str:
    """The confirmation code the number received (once it has)."""
    texts = eventually(lambda: [t for t in gateway.received_by(e164) if CODE.fullmatch(t)], "the code arrives")
    match = CODE.fullmatch(texts[-1])
    assert match
    return match.group(1)


def confirm(client: httpx.Client, running: FaultStack, e164: str, code: str) -> httpx.Response:
    return client.post(f"{running.urls['notify']}/v1/subscriptions/confirm", json={"phone": e164, "code": code})


def test_sms_queued_while_kannel_is_down_are_sent_once_it_is_back(sms: tuple[FaultStack, kannel.Kannel]) -> None:
    running, gateway = sms
    phones = numbers(1_000_100, 5)
    gateway.stop()
    try:
        with httpx.Client(timeout=10) as client:
            for e164 in phones:
                assert subscribe(client, running, e164).status_code == 202
        # The sender tries, the gateway does not answer: the messages wait, none is given up.
        eventually(
            lambda: all(
                rows and rows[0]["state"] == "queued" and rows[0]["attempts"] >= 2
                for rows in (attempts_of(running, e164) for e164 in phones)
            ),
            "the sender tries and keeps the messages",
        )
        assert gateway.received_by(phones[0]) == []
    finally:
        gateway.start()
    for e164 in phones:
        eventually(lambda e=e164: gateway.received_by(e), "the code arrives once the gateway is back")
    time.sleep(SETTLE_S)
    for e164 in phones:
        (text,) = gateway.received_by(e164)  # exactly one at the SMSC
        assert CODE.fullmatch(text)
        (row,) = messages_to(running, e164)
        assert row["state"] in {"sent", "delivered"}


def attempts_of(running: FaultStack, e164: str) -> list[dict[str, object]]:
    return [
        dict(r)
        for r in fetch(
            running.database_urls["notify"],
            """SELECT m.state, m.attempts FROM sms_messages m JOIN phones p USING (phone_hash) WHERE p.e164 = $1""",
            e164,
        )
    ]


def test_without_redis_subscribe_and_confirm_fail_closed_and_stop_still_works(
    sms: tuple[FaultStack, kannel.Kannel],
) -> None:
    running, gateway = sms
    listener, pending, newcomer, barrier = numbers(1_000_200, 4)
    with httpx.Client(timeout=10) as client:
        assert subscribe(client, running, listener).status_code == 202
        assert confirm(client, running, listener, code_of(gateway, listener)).status_code == 200
        eventually(lambda: len(gateway.received_by(listener)) == 2, "the confirmation")
        accepted = subscribe(client, running, pending)
        assert accepted.status_code == 202
        code = code_of(gateway, pending)
        sent_before = gateway.received_count()

        running.redis.process.kill()
        running.redis.process.wait(30)
        try:
            # The abuse limits cannot be counted: nothing is accepted, no SMS is paid for.
            for _ in range(5):
                refused = subscribe(client, running, newcomer)
                assert refused.status_code == 503, refused.text
                assert refused.headers["retry-after"] and "problem+json" in refused.headers["content-type"]
            refused = confirm(client, running, pending, code)
            assert refused.status_code == 503, refused.text
            state = client.get(f"{running.urls['notify']}/v1/subscriptions/{accepted.json()['id']}").json()["state"]
            assert state == "pending"

            # СТОП needs no limit: it is honoured, and acknowledged, while Redis is away.
            with gateway.texting(listener, "СТОП"):
                eventually(
                    lambda: "SMS вимкнено. START - увімкнути знову" in gateway.received_by(listener), "the STOP answer"
                )
        finally:
            running.redis = running.redis.restart()

        # A barrier: a number subscribed after Redis is back gets its code, and nothing else went out meanwhile.
        eventually(lambda: subscribe(client, running, barrier).status_code == 202, "subscribing works again")
        code_of(gateway, barrier)
        assert gateway.received_count() == sent_before + 2  # the STOP answer and the barrier's code
        assert gateway.received_by(newcomer) == [] and messages_to(running, newcomer) == []
        assert confirm(client, running, pending, code).status_code == 200  # the code still holds


def test_each_subscribed_change_is_one_sms_across_a_broker_restart(sms: tuple[FaultStack, kannel.Kannel]) -> None:
    running, gateway = sms
    count = 6
    phones = numbers(1_000_300, count)
    with httpx.Client(timeout=15) as client:
        points = [register(client, running, name_uk=f"Пункт незламності — Школа №{n + 1}") for n in range(count)]
        eventually(
            lambda: (
                len(
                    fetch(
                        running.database_urls["notify"],
                        "SELECT 1 FROM alert_points WHERE id = ANY($1) AND known",
                        [uuid.UUID(p) for p in points],
                    )
                )
                == count
            ),
            "notify learns the points",
        )
        for e164, point_id in zip(phones, points, strict=True):
            assert subscribe(client, running, e164, point_id=point_id).status_code == 202
            assert confirm(client, running, e164, code_of(gateway, e164)).status_code == 200

        # Each point opens, then keeps reporting its occupancy (no news); the broker is killed early and is away
        # while most points open.
        refused = []
        try:
            for n in range(count * 5):
                point_id = points[n % count]
                response = client.post(
                    f"{running.urls['status']}/v1/points/{point_id}/status",
                    json={"state": "open", "occupancy": n},
                    headers={**running.headers("admin"), "Idempotency-Key": str(uuid.uuid4())},
                )
                if response.status_code != 201:
                    refused.append(response.status_code)
                if n == 1:
                    running.kill_nats()
                if n == count * 3:
                    running.start_nats()
                time.sleep(0.1)
        finally:
            if running.nats.process.poll() is not None:
                running.start_nats()
        assert not refused, refused

    for e164 in phones:
        eventually(
            lambda e=e164: [t for t in gateway.received_by(e) if t.startswith("ВІДКРИТО")], "the opening's SMS arrives"
        )
    time.sleep(SETTLE_S)
    for e164, n in zip(phones, range(count), strict=True):
        alerts = [t for t in gateway.received_by(e164) if not CODE.fullmatch(t) and "підтверджено" not in t]
        assert alerts == [f"ВІДКРИТО: Школа №{n + 1}, вул. Хрещатик, 7, Київ"], alerts
        kinds = Counter(row["kind"] for row in messages_to(running, e164))
        assert kinds["alert"] == 1, kinds
