"""The OWASP API Security Top 10 (2023) items that apply to notify: its SMS subscriptions, contacts and webhooks.

Limits are tried against apps of their own in fresh namespaces (their Redis counters start at zero); the rest run
against one notify app of this module that allows http://127.0.0.1 webhook endpoints (as tests and development do).
"""

import asyncio
import itertools
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import asyncpg
import phonenumbers
import pytest
import redis
from fastapi.testclient import TestClient

from poi_cli import stack
from poi_notify.app import _webhook_client
from poi_notify.app import create_app as create_notify
from poi_notify.webhooks import delivery
from poi_shared.auth import issue_token
from poi_shared.models import MAX_BODY_BYTES
from tests.conftest import drop_namespace
from tests.integration.routes.conftest import GATEWAY_TOKEN, SECRET, Bearer, eventually, notify_settings, serve
from tests.security.test_owasp_api_top10 import untrustworthy_tokens

pytestmark = pytest.mark.integration
KYIV = {"lat": 50.4501, "lon": 30.5234, "radius_m": 3000}
CHANGED = "ua.poi.status.changed.v1"
_numbers = itertools.count()
_spaces = itertools.count()


def new_number() -> str:
    """A Ukrainian mobile number no other test of this session uses."""
    return f"+38050{(time.time_ns() // 1000 + next(_numbers) * 7919) % 10**7:07d}"


def integrator(subject: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {issue_token(SECRET, subject=subject, roles=['integrator'])}"}


def fetch(url: str, sql: str, *args: Any) -> list[asyncpg.Record]:
    async def run() -> list[asyncpg.Record]:
        conn = await asyncpg.connect(url)
        try:
            return await conn.fetch(sql, *args)
        finally:
            await conn.close()

    return asyncio.run(run())


@pytest.fixture(scope="module")
def notify(infra: stack.Infrastructure, routes_namespace: str, database_urls: dict[str, str]) -> Iterator[TestClient]:
    """Notify allowing http://127.0.0.1 webhooks (never private or link-local ones), in the security namespace."""
    settings = notify_settings(infra, routes_namespace, database_urls, webhook_allow_loopback_http=True, db_pool_max=2)
    yield from serve(create_notify(settings))


Fresh = Callable[..., tuple[TestClient, str]]


@pytest.fixture
def fresh(infra: stack.Infrastructure, namespace: str) -> Iterator[Fresh]:
    """fresh(**settings): a notify app in a new namespace (its limits counted from zero) and its database URL."""
    made: list[tuple[str, Iterator[TestClient]]] = []

    def start(**changes: Any) -> tuple[TestClient, str]:
        ns = f"{namespace}o{next(_spaces)}"
        urls = asyncio.run(stack.prepare_databases(infra.database_url, ns))
        running = serve(create_notify(notify_settings(infra, ns, urls, db_pool_max=2, **changes)))
        made.append((ns, running))
        return next(running), urls["notify"]

    yield start
    cache = redis.Redis.from_url(infra.redis_url)
    try:
        for ns, running in made:
            running.close()
            asyncio.run(drop_namespace(infra, ns))
            for key in cache.scan_iter(f"{ns}:*"):
                cache.delete(key)
    finally:
        cache.close()


class Receiver:
    """An HTTP endpoint on 127.0.0.1 answering each path as told: slowly, hugely, with a redirect, or plainly."""

    def __init__(self) -> None:
        self.hits: list[str] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("content-length", 0)))
                owner.hits.append(self.path)
                if self.path == "/redirect":
                    self.send_response(307)
                    self.send_header("Location", "http://169.254.169.254/latest/meta-data")
                    self.end_headers()
                elif self.path == "/huge":
                    self.send_response(200)
                    self.end_headers()
                    try:
                        for _ in range(64):  # 64 MiB unless the client stops reading
                            self.wfile.write(b"x" * 1_048_576)
                    except OSError:
                        pass
                elif self.path == "/slow":
                    time.sleep(5)
                    self.send_response(204)
                    self.end_headers()
                else:
                    self.send_response(204)
                    self.end_headers()

            def log_message(self, *_: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    running = Receiver()
    yield running
    running.close()


def register(client: TestClient, headers: dict[str, str], url: str, **changes: Any) -> dict[str, Any]:
    response = client.post("/v1/webhooks", json={"url": url, "event_types": [CHANGED], **changes}, headers=headers)
    assert response.status_code == 201, response.text
    return response.json()


# API1:2023 Broken Object Level Authorization


def test_api1_an_integrator_cannot_read_change_or_replay_anothers_webhook(
    notify: TestClient, receiver: Receiver
) -> None:
    mine, theirs = integrator(f"a-{uuid.uuid4()}"), integrator(f"b-{uuid.uuid4()}")
    hook = register(notify, mine, f"{receiver.url}/hook")
    assert hook["secret"], "the signing secret is shown once, to its owner"
    path = f"/v1/webhooks/{hook['id']}"
    assert notify.get("/v1/webhooks", headers=theirs).json()["items"] == []
    for method, url, body in [
        ("GET", path, None),
        ("PATCH", path, {"enabled": False}),
        ("GET", f"{path}/deliveries", None),
        ("POST", f"{path}/deliveries/replay-dead-letters", None),
        ("POST", f"{path}/deliveries/{uuid.uuid4()}/replay", None),
        ("DELETE", path, None),
    ]:
        response = notify.request(method, url, json=body, headers=theirs)
        assert response.status_code == 404, f"{method} {url}: {response.status_code}"
        assert hook["secret"] not in response.text
    kept = notify.get(path, headers=mine)
    assert kept.status_code == 200 and kept.json()["enabled"] is True
    assert "secret" not in kept.json(), "the secret is never shown again"


# API2:2023 Broken Authentication


@pytest.mark.parametrize("kind", list(untrustworthy_tokens()))
def test_api2_untrustworthy_tokens_are_refused_by_notify(kind: str, notify: TestClient) -> None:
    token = {"Authorization": f"Bearer {untrustworthy_tokens()[kind]}"}
    for method, path, body in [
        ("POST", "/v1/webhooks", {"url": "http://127.0.0.1:9/h", "event_types": [CHANGED]}),
        ("GET", "/v1/webhooks", None),
        ("POST", "/v1/contacts", {"phone": new_number(), "katotth_prefix": "UA80"}),
        ("GET", "/v1/contacts", None),
        ("GET", "/v1/observations?point_id=00000000-0000-4000-8000-000000000000", None),
    ]:
        response = notify.request(method, path, json=body, headers=token)
        assert response.status_code == 401, f"{kind}: {method} {path} answered {response.status_code}"


def test_api2_gateway_callbacks_take_only_the_gateway_token(notify: TestClient, bearer: Bearer) -> None:
    inbound = {"from": new_number(), "text": "STOP"}
    for credentials in [{}, {"token": "guess"}, {"token": GATEWAY_TOKEN.upper()}]:
        assert notify.get("/v1/sms/inbound", params={**inbound, **credentials}).status_code == 404
    # A user's token is no gateway's: still hidden.
    assert notify.get("/v1/sms/inbound", params=inbound, headers=bearer("admin")).status_code == 404
    assert notify.get("/v1/sms/dlr", params={"id": str(uuid.uuid4()), "type": 1}).status_code == 404


# API3:2023 Broken Object Property Level Authorization


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/v1/subscriptions", {"phone": "+380501234567", "area": KYIV, "confirmed": True}, "confirmed"),
        ("/v1/subscriptions", {"phone": "+380501234567", "area": KYIV, "id": str(uuid.uuid4())}, "id"),
        ("/v1/subscriptions", {"phone": "+380501234567", "area": KYIV, "phone_hash": "x"}, "phone_hash"),
        ("/v1/subscriptions/confirm", {"phone": "+380501234567", "code": "123456", "attempts": 0}, "attempts"),
        ("/v1/webhooks", {"url": "http://127.0.0.1:9/h", "event_types": [CHANGED], "secret": "mine"}, "secret"),
        ("/v1/webhooks", {"url": "http://127.0.0.1:9/h", "event_types": [CHANGED], "owner": "someone"}, "owner"),
        ("/v1/webhooks", {"url": "http://127.0.0.1:9/h", "event_types": [CHANGED], "enabled": False}, "enabled"),
        ("/v1/webhooks", {"url": "http://127.0.0.1:9/h", "event_types": [CHANGED], "id": str(uuid.uuid4())}, "id"),
        ("/v1/contacts", {"phone": "+380501234567", "katotth_prefix": "UA80", "is_contact": True}, "is_contact"),
        ("/v1/contacts", {"phone": "+380501234567", "katotth_prefix": "UA80", "id": str(uuid.uuid4())}, "id"),
    ],
)
def test_api3_server_owned_fields_are_refused(
    notify: TestClient, bearer: Bearer, path: str, body: dict[str, Any], field: str
) -> None:
    headers = integrator("mass-assignment") if "webhooks" in path else bearer("admin")
    response = notify.post(path, json=body, headers=headers)
    assert response.status_code == 422, f"{path} {field}: {response.status_code} {response.text}"
    assert f"body.{field}" in [e["location"] for e in response.json()["errors"]]


def test_api3_numbers_are_never_answered_in_clear(notify: TestClient, bearer: Bearer) -> None:
    subscriber, contact = new_number(), new_number()
    national = "0" + subscriber[4:]
    answers = [notify.post("/v1/subscriptions", json={"phone": national, "area": KYIV})]
    added = notify.post("/v1/contacts", json={"phone": contact, "katotth_prefix": "UA4606"}, headers=bearer("admin"))
    answers += [added, notify.get("/v1/contacts", headers=bearer("admin"))]
    answers.append(notify.get(f"/v1/subscriptions/{answers[0].json()['id']}"))
    for response in answers:
        assert response.status_code in (200, 201, 202), response.text
        for number in (subscriber, contact, national, subscriber[1:], contact[1:]):
            assert number not in response.text, f"{response.request.url}: {number} in clear"


# API4:2023 Unrestricted Resource Consumption


def test_api4_bodies_radii_and_lists_are_capped(notify: TestClient, bearer: Bearer) -> None:
    huge = {"phone": new_number(), "area": KYIV, "padding": "x" * (MAX_BODY_BYTES + 1)}
    assert notify.post("/v1/subscriptions", json=huge).status_code == 413
    too_far = {"phone": new_number(), "area": {**KYIV, "radius_m": 1_000_000}}
    assert notify.post("/v1/subscriptions", json=too_far).status_code == 422
    many = {"phone": new_number(), "area": KYIV, "services": ["heat"] * 21}
    assert notify.post("/v1/subscriptions", json=many).status_code == 422
    hook = {"url": "http://127.0.0.1:9/h", "event_types": [CHANGED], "area": {**KYIV, "radius_m": 10_000_000}}
    assert notify.post("/v1/webhooks", json=hook, headers=integrator("caps")).status_code == 422
    assert notify.get("/v1/contacts", params={"limit": 10_001}, headers=bearer("admin")).status_code == 422


def test_api4_subscribing_is_limited_per_number_and_in_total(fresh: Fresh) -> None:
    client, _ = fresh(subscribe_per_phone_per_hour=2, subscribe_per_ip_per_hour=1000, subscribe_per_minute=5)
    one = new_number()
    per_phone = [client.post("/v1/subscriptions", json={"phone": one, "area": KYIV}).status_code for _ in range(4)]
    assert per_phone == [202, 202, 429, 429], per_phone
    others = [client.post("/v1/subscriptions", json={"phone": new_number(), "area": KYIV}) for _ in range(5)]
    limited = [r for r in others if r.status_code == 429]
    assert limited and int(limited[0].headers["retry-after"]) > 0, [r.status_code for r in others]


# API5:2023 Broken Function Level Authorization

PUBLIC_WRITES = {
    ("POST", "/v1/subscriptions"),
    ("POST", "/v1/subscriptions/confirm"),
    ("POST", "/v1/subscriptions/unsubscribe"),
}
GATEWAY_CALLBACKS = {
    ("GET", "/v1/sms/inbound"): {"from": "+380501234567", "text": "STOP"},
    ("GET", "/v1/sms/dlr"): {"id": "7c0e2f4e-8a4b-4d4e-9a55-2a3f7d7a1c11", "type": 1},
}
NOTIFY_WRITES: dict[tuple[str, str], tuple[str, Any]] = {
    ("POST", "/v1/contacts"): ("admin", {"phone": "+380501234567", "katotth_prefix": "UA80"}),
    ("DELETE", "/v1/contacts/{contact_id}"): ("admin", None),
    ("POST", "/v1/webhooks"): ("integrator", {"url": "http://127.0.0.1:9/h", "event_types": [CHANGED]}),
    ("PATCH", "/v1/webhooks/{webhook_id}"): ("integrator", {"enabled": False}),
    ("DELETE", "/v1/webhooks/{webhook_id}"): ("integrator", None),
    ("POST", "/v1/webhooks/{webhook_id}/deliveries/replay-dead-letters"): ("integrator", None),
    ("POST", "/v1/webhooks/{webhook_id}/deliveries/{delivery_id}/replay"): ("integrator", None),
}


def test_api5_every_notify_write_has_its_role_public_ones_are_listed_and_callbacks_are_token_only(
    notify: TestClient, bearer: Bearer
) -> None:
    document = notify.app.openapi()  # type: ignore[attr-defined]
    others = {
        "admin": [
            bearer("integrator"),
            bearer("coordinator", katotth=["UA80"]),
            bearer("operator", points=[str(uuid.uuid4())]),
        ],
        "integrator": [bearer("admin"), bearer("coordinator", katotth=["UA80"])],
    }
    for path, item in document["paths"].items():
        for method, operation in ((m.upper(), o) for m, o in item.items()):
            key = (method, path)
            if key in GATEWAY_CALLBACKS:
                assert not operation.get("security"), f"{key}: the gateway has no bearer token"
                params = GATEWAY_CALLBACKS[key]
                assert notify.request(method, path, params=params).status_code == 404, f"{key} without its token"
                refused = notify.request(method, path, params=params, headers=bearer("admin"))
                assert refused.status_code == 404, f"{key} with a user's token"
                continue
            if method == "GET":
                continue
            if key in PUBLIC_WRITES:
                assert not operation.get("security"), f"{key} is public"
                continue
            assert key in NOTIFY_WRITES, f"{key} is a new write: add it to this role matrix"
            assert operation.get("security"), f"{key} is a write that declares no bearer token"
            role, body = NOTIFY_WRITES[key]
            url = re.sub(r"\{\w+\}", lambda _: str(uuid.uuid4()), path)
            assert notify.request(method, url, json=body).status_code == 401, f"{key} without a token"
            for headers in others[role]:
                status = notify.request(method, url, json=body, headers=headers).status_code
                assert status == 403, f"{key} by a caller without {role}: {status}"


# API6:2023 Unrestricted Access to Sensitive Business Flows


def test_api6_sms_pumping_many_numbers_from_one_address_is_stopped_before_codes_go_out(fresh: Fresh) -> None:
    client, url = fresh(subscribe_per_ip_per_hour=3)
    answers = [client.post("/v1/subscriptions", json={"phone": new_number(), "area": KYIV}) for _ in range(12)]
    assert [a.status_code for a in answers].count(202) == 3, [a.status_code for a in answers]
    assert all(a.status_code == 429 for a in answers[3:])
    codes = fetch(url, "SELECT count(*) AS n FROM sms_messages WHERE kind = 'confirmation'")
    assert codes[0]["n"] == 3, "no code beyond the limit is ever queued"


@pytest.mark.parametrize(
    "kind",
    [
        phonenumbers.PhoneNumberType.PREMIUM_RATE,
        phonenumbers.PhoneNumberType.FIXED_LINE,
        phonenumbers.PhoneNumberType.TOLL_FREE,
    ],
    ids=["premium", "fixed-line", "toll-free"],
)
def test_api6_numbers_that_would_cost_or_cannot_take_an_sms_are_refused(
    notify: TestClient, database_urls: dict[str, str], kind: int
) -> None:
    example = phonenumbers.example_number_for_type("UA", kind)
    e164 = phonenumbers.format_number(example, phonenumbers.PhoneNumberFormat.E164)
    assert notify.post("/v1/subscriptions", json={"phone": e164, "area": KYIV}).status_code == 422
    assert not fetch(database_urls["notify"], "SELECT 1 FROM phones WHERE e164 = $1", e164)


def test_api6_confirmation_codes_cannot_be_brute_forced(fresh: Fresh) -> None:
    client, url = fresh(code_max_attempts=3, confirm_per_phone_per_hour=6)
    e164 = new_number()
    assert client.post("/v1/subscriptions", json={"phone": e164, "area": KYIV}).status_code == 202
    body = eventually(lambda: fetch(url, "SELECT body FROM sms_messages WHERE kind = 'confirmation'"), "code")[0]
    found = re.search(r"\b[0-9]{6}\b", body["body"])
    assert found
    code = found.group()
    wrong = f"{(int(code) + 1) % 10**6:06d}"
    tries = [client.post("/v1/subscriptions/confirm", json={"phone": e164, "code": wrong}) for _ in range(3)]
    assert [t.status_code for t in tries] == [409, 409, 409]
    burnt = client.post("/v1/subscriptions/confirm", json={"phone": e164, "code": code})
    assert burnt.status_code == 409, "the right code after too many wrong ones is refused"
    assert not fetch(url, "SELECT 1 FROM subscriptions")
    more = [client.post("/v1/subscriptions/confirm", json={"phone": e164, "code": code}) for _ in range(4)]
    assert [m.status_code for m in more][-1] == 429, "confirmations per number are limited"


# API7:2023 Server Side Request Forgery


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8004/v1/sms/inbound",
        "http://localhost/hook",
        "http://[::1]/hook",
        "http://0.0.0.0/hook",
        "http://2130706433/hook",
        "http://10.0.0.1/hook",
        "http://172.16.0.1/hook",
        "http://192.168.0.1/hook",
        "http://169.254.169.254/latest/meta-data",
        "http://[fe80::1]/hook",
        "http://[fd00::1]/hook",
        "http://[::ffff:169.254.169.254]/hook",
        "http://metadata.google.internal/computeMetadata/v1/",
        "https://100.64.0.1/hook",
        "file:///etc/passwd",
        "gopher://127.0.0.1:6379/_INFO",
    ],
)
def test_api7_webhook_urls_to_internal_addresses_are_refused(notify_client: TestClient, url: str) -> None:
    owner = integrator(f"ssrf-{uuid.uuid4()}")
    response = notify_client.post("/v1/webhooks", json={"url": url, "event_types": [CHANGED]}, headers=owner)
    assert response.status_code == 422, f"{url}: {response.status_code}"
    assert notify_client.get("/v1/webhooks", headers=owner).json()["items"] == []


# API10:2023 Unsafe Consumption of APIs


def test_api10_a_webhook_receiver_answering_slowly_hugely_or_with_a_redirect_is_bounded(
    infra: stack.Infrastructure, routes_namespace: str, database_urls: dict[str, str], receiver: Receiver
) -> None:
    settings = notify_settings(
        infra, routes_namespace, database_urls, webhook_allow_loopback_http=True, webhook_timeout_s=1
    )

    async def attempts() -> dict[str, delivery.Attempt]:
        async with _webhook_client(settings) as client:
            return {
                path: await delivery.post(
                    client, url=f"{receiver.url}{path}", secret="s", delivery_id="d", body=b"{}", settings=settings
                )
                for path in ("/slow", "/huge", "/redirect")
            }

    answers = asyncio.run(attempts())
    assert answers["/slow"].status is None and "no answer within 1s" in str(answers["/slow"].error)
    assert answers["/huge"].delivered, "only the status counts; the body is cut at webhook_response_max_bytes"
    assert not answers["/redirect"].delivered and answers["/redirect"].status == 307
    assert receiver.hits == ["/slow", "/huge", "/redirect"], "the redirect (to the metadata address) is not followed"


class FakeKannel:
    """An HTTP server where Kannel's sendsms would be, answering what the test sets."""

    def __init__(self) -> None:
        self.answer: tuple[int, bytes] = (503, b"Service Unavailable")
        self.calls = 0
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                owner.calls += 1
                status, body = owner.answer
                self.send_response(status)
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def test_api10_kannel_answering_5xx_or_garbage_leaves_the_sms_queued_until_it_accepts(fresh: Fresh) -> None:
    kannel = FakeKannel()
    try:
        client, url = fresh(
            kannel_url=kannel.url,
            kannel_username="test-user",
            kannel_password="test-password",
            sms_retry_initial_s=0.05,
            sms_retry_max_s=0.1,
        )
        assert client.post("/v1/subscriptions", json={"phone": new_number(), "area": KYIV}).status_code == 202

        def code() -> asyncpg.Record | None:
            rows = fetch(url, "SELECT state, attempts, last_error FROM sms_messages WHERE kind = 'confirmation'")
            return rows[0] if rows else None

        # Between attempts the message is queued again (during one it is briefly 'sending'); never sent or failed.
        def queued_after(error: str) -> asyncpg.Record | None:
            row = code()
            return row if row and row["state"] == "queued" and error in (row["last_error"] or "") else None

        failed = eventually(lambda: queued_after("503"), "queued again after a 503")
        tries = failed["attempts"]
        assert tries >= 1
        kannel.answer = (200, b"<html>Welcome to the hotel Wi-Fi</html>")
        garbage = eventually(lambda: queued_after("acceptance"), "queued again after garbage")
        assert garbage["attempts"] > tries, "retried, not lost, not marked sent"
        kannel.answer = (202, b"0: Accepted for delivery")
        eventually(lambda: (row := code()) and row["state"] == "sent", "sent once Kannel accepts")
        assert fetch(url, "SELECT count(*) AS n FROM sms_messages")[0]["n"] == 1
    finally:
        kannel.server.shutdown()
        kannel.server.server_close()
