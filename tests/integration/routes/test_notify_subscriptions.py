"""Notify's subscriptions and Kannel callbacks: double opt-in, codes, STOP/START by SMS, abuse limits, reports.

SMS go to the log sink here (no gateway configured); what would be sent is read from notify's own database.
"""

import asyncio
import logging
import random
import re
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import phonenumbers
import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from poi_cli import stack
from poi_cli.embedded import free_port
from poi_notify.app import create_app as create_notify
from poi_notify.cells import cells_covering
from poi_notify.phones.service import phone_hash
from poi_notify.sms import service as sms
from tests.integration.routes.conftest import (
    GATEWAY_TOKEN,
    Bearer,
    assert_problem,
    eventually,
    notify_settings,
    register_point,
    serve,
)

pytestmark = pytest.mark.integration
KEY = SecretStr("test-phone-key")
KYIV = {"lat": 50.4501, "lon": 30.5234, "radius_m": 3000}


def new_number() -> str:
    """A Ukrainian mobile number no other test uses."""
    return f"+38067{random.randrange(10**7):07d}"


def fetch(database_urls: dict[str, str], sql: str, *args: Any) -> list[asyncpg.Record]:
    """Rows from notify's database."""

    async def run() -> list[asyncpg.Record]:
        conn = await asyncpg.connect(database_urls["notify"])
        try:
            return await conn.fetch(sql, *args)
        finally:
            await conn.close()

    return asyncio.run(run())


def messages(database_urls: dict[str, str], e164: str) -> list[asyncpg.Record]:
    """The number's SMS, oldest first."""
    sql = "SELECT id, kind, body, state, dlr_type FROM sms_messages WHERE phone_hash = $1 ORDER BY created_at, id"
    return fetch(database_urls, sql, phone_hash(KEY, e164))


def last_code(database_urls: dict[str, str], e164: str) -> str:
    """The code in the number's latest confirmation SMS."""
    codes = [m["body"] for m in messages(database_urls, e164) if m["kind"] == "confirmation"]
    found = re.search(r"\b[0-9]{6}\b", codes[-1])
    assert found, codes[-1]
    return found.group()


def subscribe(client: TestClient, e164: str, **changes: Any) -> dict[str, Any]:
    response = client.post("/v1/subscriptions", json={"phone": e164, "area": KYIV, **changes})
    assert response.status_code == 202, response.text
    return response.json()


def text_in(client: TestClient, e164: str, text: str) -> str:
    """An SMS from the number, as Kannel's get-url delivers it; what notify did."""
    response = client.get("/v1/sms/inbound", params={"from": e164, "text": text, "token": GATEWAY_TOKEN})
    assert response.status_code == 200, response.text
    return response.json()["handled"]


def test_an_area_subscription_waits_for_its_code_then_is_active(
    notify_client: TestClient, database_urls: dict[str, str]
) -> None:
    e164 = new_number()
    accepted = subscribe(notify_client, e164, language="uk", services=["heat"])
    assert accepted["status"] == "confirmation sent" and accepted["phone"] == e164[:6] + "*****" + e164[-2:]
    state = notify_client.get(f"/v1/subscriptions/{accepted['id']}").json()
    assert state["state"] == "pending" and state["phone"] == accepted["phone"] and e164 not in str(state)
    (code_sms,) = messages(database_urls, e164)
    assert code_sms["kind"] == "confirmation" and code_sms["body"].startswith("Пункти незламності: код ")
    eventually(lambda: messages(database_urls, e164)[0]["state"] == "sent", "the sender sends the code")
    assert fetch(database_urls, "SELECT 1 FROM subscriptions WHERE id = $1", accepted["id"]) == []

    wrong = notify_client.post("/v1/subscriptions/confirm", json={"phone": e164, "code": "000000"})
    if last_code(database_urls, e164) != "000000":
        assert "4 tries left" in assert_problem(wrong, 409)["detail"]
    confirmed = notify_client.post(
        "/v1/subscriptions/confirm", json={"phone": e164, "code": last_code(database_urls, e164)}
    )
    assert confirmed.status_code == 200, confirmed.text
    assert confirmed.json() == {"status": "subscribed", "subscriptions": 1}
    assert notify_client.get(f"/v1/subscriptions/{accepted['id']}").json()["state"] == "active"
    (row,) = fetch(database_urls, "SELECT cells, services FROM subscriptions WHERE id = $1", accepted["id"])
    assert row["cells"] == cells_covering(KYIV["lat"], KYIV["lon"], KYIV["radius_m"]) and row["services"] == ["heat"]
    assert [m["kind"] for m in messages(database_urls, e164)] == ["confirmation", "reply"]
    # The code is used up.
    again = notify_client.post(
        "/v1/subscriptions/confirm", json={"phone": e164, "code": last_code(database_urls, e164)}
    )
    assert "no valid code" in assert_problem(again, 409)["detail"]


def known_to_notify(registry_client: TestClient, bearer: Bearer, database_urls: dict[str, str], **changes: Any) -> str:
    """A point registered as an admin, once notify has heard of it; its id."""
    point_id = register_point(registry_client, bearer, **changes)["id"]
    sql = "SELECT 1 FROM alert_points WHERE id = $1 AND known"
    eventually(lambda: fetch(database_urls, sql, uuid.UUID(point_id)), "notify learns the point")
    return point_id


def test_a_point_subscription_from_a_national_number_in_english(
    notify_client: TestClient, registry_client: TestClient, bearer: Bearer, database_urls: dict[str, str]
) -> None:
    point_id = known_to_notify(registry_client, bearer, database_urls)
    e164 = new_number()
    national = "0" + e164[4:6] + " " + e164[6:9] + " " + e164[9:]
    accepted = subscribe(notify_client, national, area=None, point_id=point_id, language="en", latin=False)
    state = notify_client.get(f"/v1/subscriptions/{accepted['id']}").json()
    assert state["kind"] == "point" and state["point_id"] == point_id and state["language"] == "en"
    assert messages(database_urls, e164)[0]["body"].startswith("Points of Invincibility code: ")


def test_no_subscription_to_a_point_nobody_may_follow(
    notify_client: TestClient, registry_client: TestClient, bearer: Bearer, database_urls: dict[str, str]
) -> None:
    hidden = known_to_notify(registry_client, bearer, database_urls, visibility="hidden")
    unknown = str(uuid.uuid4())
    details = set()
    for point_id in (unknown, hidden):
        e164 = new_number()
        refused = notify_client.post("/v1/subscriptions", json={"phone": e164, "point_id": point_id})
        details.add(assert_problem(refused, 422, field="body.point_id")["detail"].replace(point_id, "…"))
        assert messages(database_urls, e164) == [], "no code is spent on it"
    assert len(details) == 1, "a hidden point is refused exactly as an unknown one"


def example(region: str, kind: int) -> str:
    number = phonenumbers.example_number_for_type(region, kind)
    assert number is not None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


@pytest.mark.parametrize(
    ("phone", "reason"),
    [
        (example("UA", phonenumbers.PhoneNumberType.PREMIUM_RATE), "premium-rate"),
        (example("UA", phonenumbers.PhoneNumberType.FIXED_LINE), "fixed-line"),
        (example("UA", phonenumbers.PhoneNumberType.TOLL_FREE), "toll-free"),
        ("+380", "not a"),
        ("call me", "not a phone number"),
    ],
    ids=["premium", "fixed-line", "toll-free", "short", "words"],
)
def test_numbers_that_cannot_take_an_sms_are_422_saying_why(notify_client: TestClient, phone: str, reason: str) -> None:
    response = notify_client.post("/v1/subscriptions", json={"phone": phone, "area": KYIV})
    assert reason in assert_problem(response, 422, field="body.phone")["detail"]


@pytest.mark.parametrize(
    ("changes", "location"),
    [
        ({"area": {**KYIV, "radius_m": 20_001}}, "body.area.radius_m"),
        ({"area": {**KYIV, "lat": "50.45"}}, "body.area.lat"),
        ({"point_id": "7c0e2f4e-8a4b-4d4e-9a55-2a3f7d7a1c11"}, "body"),
        ({"area": None}, "body"),
        ({"language": "de"}, "body.language"),
        ({"latin": "true"}, "body.latin"),
        ({"services": ["sauna"]}, "body.services.0"),
        ({"phone": "+38067\x001234567"}, "body.phone"),
    ],
    ids=["radius-cap", "lat-string", "point-and-area", "neither", "language", "latin-string", "service", "nul"],
)
def test_bad_subscriptions_are_422_naming_the_field(
    notify_client: TestClient, changes: dict[str, Any], location: str
) -> None:
    body = {k: v for k, v in {"phone": new_number(), "area": KYIV, **changes}.items() if v is not None}
    assert_problem(notify_client.post("/v1/subscriptions", json=body), 422, field=location)


def test_wrong_codes_burn_the_code(notify_client: TestClient, database_urls: dict[str, str]) -> None:
    e164 = new_number()
    subscribe(notify_client, e164)
    code = last_code(database_urls, e164)
    wrong = f"{(int(code) + 1) % 10**6:06d}"
    for left in (4, 3, 2, 1):
        response = notify_client.post("/v1/subscriptions/confirm", json={"phone": e164, "code": wrong})
        assert f"{left} tries left" in assert_problem(response, 409)["detail"]
    response = notify_client.post("/v1/subscriptions/confirm", json={"phone": e164, "code": wrong})
    assert "no valid code" in assert_problem(response, 409)["detail"]
    response = notify_client.post("/v1/subscriptions/confirm", json={"phone": e164, "code": code})
    assert "no valid code" in assert_problem(response, 409)["detail"]


def test_unsubscribing_takes_a_code_sent_to_the_number(
    notify_client: TestClient, database_urls: dict[str, str]
) -> None:
    e164 = new_number()
    first, second = subscribe(notify_client, e164), subscribe(notify_client, e164, area={**KYIV, "lat": 50.5})
    # A subscribe code does not unsubscribe.
    wrong_kind = {"phone": e164, "code": last_code(database_urls, e164)}
    assert_problem(notify_client.post("/v1/subscriptions/unsubscribe", json=wrong_kind), 409)
    notify_client.post("/v1/subscriptions/confirm", json={"phone": e164, "code": last_code(database_urls, e164)})
    asked = notify_client.post("/v1/subscriptions/unsubscribe", json={"phone": e164})
    assert asked.status_code == 202, asked.text
    assert messages(database_urls, e164)[-1]["body"].startswith("Код для відписки")
    done = notify_client.post(
        "/v1/subscriptions/unsubscribe", json={"phone": e164, "code": last_code(database_urls, e164)}
    )
    assert done.json() == {"status": "unsubscribed", "subscriptions": 2}
    for accepted in (first, second):
        assert_problem(notify_client.get(f"/v1/subscriptions/{accepted['id']}"), 404)
    # A number with nothing to remove gets the same answer and no SMS.
    stranger = new_number()
    assert notify_client.post("/v1/subscriptions/unsubscribe", json={"phone": stranger}).status_code == 202
    assert messages(database_urls, stranger) == []


def test_too_many_requests_for_one_number_are_429_with_retry_after(notify_client: TestClient) -> None:
    e164 = new_number()
    for _ in range(5):
        subscribe(notify_client, e164)
    response = notify_client.post("/v1/subscriptions", json={"phone": e164, "area": KYIV})
    assert "phone" in assert_problem(response, 429)["detail"]
    assert 0 < int(response.headers["Retry-After"]) <= 3600


@pytest.fixture
def notify_without_redis(
    infra: stack.Infrastructure, routes_namespace: str, database_urls: dict[str, str]
) -> Iterator[TestClient]:
    """Notify whose Redis does not answer."""
    settings = notify_settings(infra, routes_namespace, database_urls, redis_url=f"redis://127.0.0.1:{free_port()}/0")
    yield from serve(create_notify(settings))


def test_without_redis_subscribing_fails_closed_with_503(
    notify_without_redis: TestClient, database_urls: dict[str, str]
) -> None:
    e164 = new_number()
    response = notify_without_redis.post("/v1/subscriptions", json={"phone": e164, "area": KYIV})
    assert assert_problem(response, 503)["dependency"] == "redis" and response.headers["Retry-After"]
    confirm = notify_without_redis.post("/v1/subscriptions/confirm", json={"phone": e164, "code": "123456"})
    assert_problem(confirm, 503)
    assert messages(database_urls, e164) == []
    # STOP never depends on Redis.
    assert text_in(notify_without_redis, e164, "STOP") == "stop"


def queue_alert(database_urls: dict[str, str], e164: str, body: str) -> None:
    """An alert queued the one way alerts are, due in an hour (so it waits in the queue)."""

    async def run() -> None:
        conn = await asyncpg.connect(database_urls["notify"])
        try:
            async with conn.transaction():
                await sms.enqueue(
                    conn,
                    phone_hash=phone_hash(KEY, e164),
                    kind="alert",
                    body=body,
                    dedup_key=f"test-alert:{e164}:{body}",
                    not_before=datetime.now(UTC) + timedelta(hours=1),
                )
        finally:
            await conn.close()

    asyncio.run(run())


def test_stop_by_sms_ends_everything_and_start_resumes(
    notify_client: TestClient, database_urls: dict[str, str]
) -> None:
    e164 = new_number()
    accepted = subscribe(notify_client, e164)
    assert text_in(notify_client, e164, last_code(database_urls, e164)) == "code"
    assert notify_client.get(f"/v1/subscriptions/{accepted['id']}").json()["state"] == "active"
    queue_alert(database_urls, e164, "Пункт відкрито")
    assert messages(database_urls, e164)[-1]["state"] == "queued"

    assert text_in(notify_client, e164, "  сТоП ") == "stop"
    by_kind = {m["kind"]: m for m in messages(database_urls, e164)}
    assert by_kind["alert"]["state"] == "cancelled"
    assert by_kind["reply"]["body"].startswith("SMS вимкнено")
    eventually(lambda: messages(database_urls, e164)[-1]["state"] == "sent", "the STOP acknowledgement is sent")
    assert notify_client.get(f"/v1/subscriptions/{accepted['id']}").json()["state"] == "stopped"
    count = len(messages(database_urls, e164))
    assert text_in(notify_client, e164, "STOP ALL") == "stop"  # once stopped: no second acknowledgement
    assert text_in(notify_client, e164, "where is heat?") == "quiet"
    queue_alert(database_urls, e164, "Ще один пункт")  # refused by enqueue
    assert len(messages(database_urls, e164)) == count
    refused = notify_client.post("/v1/subscriptions", json={"phone": e164, "area": KYIV})
    assert "START" in assert_problem(refused, 409)["detail"]

    assert text_in(notify_client, e164, "start") == "start"
    assert messages(database_urls, e164)[-1]["body"].startswith("SMS знову увімкнено")
    assert notify_client.get(f"/v1/subscriptions/{accepted['id']}").json()["state"] == "active"


def test_anything_else_is_a_lookup_answered_even_without_search_and_limited_per_number(
    notify_client: TestClient, database_urls: dict[str, str]
) -> None:
    e164 = new_number()
    # No search service listens for this app: the resident still gets a reply saying so, not silence.
    assert text_in(notify_client, e164, "Where can I charge my phone?") == "lookup"
    reply = messages(database_urls, e164)[-1]
    assert reply["kind"] == "lookup" and reply["body"]
    for _ in range(9):
        text_in(notify_client, e164, "hello?")
    assert text_in(notify_client, e164, "hello?") == "quiet"
    assert len(messages(database_urls, e164)) == 10


def test_the_gateway_routes_are_hidden_without_the_gateway_token(notify_client: TestClient) -> None:
    params = {"from": new_number(), "text": "STOP"}
    assert "gateway" in assert_problem(notify_client.get("/v1/sms/inbound", params=params), 404)["detail"]
    assert_problem(notify_client.get("/v1/sms/inbound", params={**params, "token": "guess"}), 404)
    dlr = {"id": "7c0e2f4e-8a4b-4d4e-9a55-2a3f7d7a1c11", "type": 1}
    assert "gateway" in assert_problem(notify_client.get("/v1/sms/dlr", params=dlr), 404)["detail"]
    # With the token: taken (answered before any database work), and dropped when written as naming no message.
    assert notify_client.get("/v1/sms/dlr", params={**dlr, "token": GATEWAY_TOKEN}).status_code == 202
    assert text_in(notify_client, "INFO", "hello") == "ignored"


def test_delivery_reports_are_recorded(notify_client: TestClient, database_urls: dict[str, str]) -> None:
    e164 = new_number()
    subscribe(notify_client, e164)
    (message,) = messages(database_urls, e164)
    eventually(lambda: messages(database_urls, e164)[0]["state"] == "sent", "the code is sent")
    # In any order: a late "accepted by the SMSC" (8) does not hide "delivered to the phone" (1).
    sql = "SELECT state, dlr_type, dlr_at FROM sms_messages WHERE id = $1"
    written = None
    for dlr_type, (state, recorded_type) in ((8, ("sent", 8)), (1, ("delivered", 1)), (8, ("delivered", 1))):
        params = {"id": str(message["id"]), "type": dlr_type, "token": GATEWAY_TOKEN}
        response = notify_client.get("/v1/sms/dlr", params=params)
        assert (response.status_code, response.json()) == (202, {"taken": True})
        # Written with the next batch, a few tens of milliseconds later (each report moves dlr_at).
        row = eventually(
            lambda before=written: next(
                (r for r in fetch(database_urls, sql, message["id"]) if r["dlr_at"] != before), None
            ),
            f"report {dlr_type} written",
        )
        assert (row["state"], row["dlr_type"]) == (state, recorded_type)
        written = row["dlr_at"]
    metrics = notify_client.get("/metrics").text
    assert 'poi_sms_sent_total{provider="log"}' in metrics


def test_delivery_reports_taken_are_written_when_notify_stops(
    notify_client: TestClient, infra: stack.Infrastructure, routes_namespace: str, database_urls: dict[str, str]
) -> None:
    e164 = new_number()
    subscribe(notify_client, e164)
    (message,) = messages(database_urls, e164)
    eventually(lambda: messages(database_urls, e164)[0]["state"] == "sent", "the code is sent")
    # A second notify that would write only after a minute: stopping it writes what it took.
    settings = notify_settings(infra, routes_namespace, database_urls, sms_dlr_flush_s=60.0)
    for client in serve(create_notify(settings)):
        for dlr_type in (8, 1):
            params = {"id": str(message["id"]), "type": dlr_type, "token": GATEWAY_TOKEN}
            assert client.get("/v1/sms/dlr", params=params).status_code == 202
    (row,) = messages(database_urls, e164)
    assert (row["state"], row["dlr_type"]) == ("delivered", 1)


def test_numbers_never_reach_the_logs_in_clear(
    notify_client: TestClient, database_urls: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    e164 = new_number()
    with caplog.at_level(logging.DEBUG):
        subscribe(notify_client, e164)
        eventually(lambda: messages(database_urls, e164)[0]["state"] == "sent", "the code is sent")
        text_in(notify_client, e164, "STOP")
        eventually(lambda: messages(database_urls, e164)[-1]["state"] == "sent", "the acknowledgement is sent")
    # Notify's own records (the test client's httpx logs its request URLs; it is not part of the service).
    logged = "\n".join(r.getMessage() for r in caplog.records if r.name != "httpx")
    assert "SMS not sent (no gateway configured)" in logged  # the log sink shows the exact text...
    assert e164[1:] not in logged and e164[4:] not in logged  # ...but never the number
