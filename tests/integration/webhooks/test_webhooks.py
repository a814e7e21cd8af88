"""Webhooks end to end on real PostgreSQL and NATS: signed CloudEvents reach a real receiver on 127.0.0.1, with
retries, dead letters, replay, filters, idempotency and role checks."""

import asyncio
import hashlib
import hmac
import json
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient

from poi_cli import stack
from poi_notify import data
from poi_notify import events as notify_events
from poi_shared import db
from poi_shared.contracts import STATUS_CHANGED, STATUS_LOW_FUEL, STATUS_STALE, OpenState, StatusState, Visibility
from poi_shared.envelope import OutgoingMessage, parse_message
from tests.integration.routes.conftest import assert_problem, eventually
from tests.integration.webhooks.conftest import DISABLE_AFTER_DEAD, MAX_ATTEMPTS, Events, Receiver, integrator
from tests.prometheus import samples

pytestmark = pytest.mark.integration
CHANGED = "ua.poi.status.changed.v1"
ALL_TYPES = [CHANGED, STATUS_STALE.type, STATUS_LOW_FUEL.type]
Register = Callable[..., dict[str, Any]]


@pytest.fixture
def register(notify: TestClient) -> Iterator[Register]:
    """Register webhooks as an integrator of the test's own; they are removed after the test."""
    made: list[tuple[str, dict[str, str]]] = []
    default_owner = f"integrator-{uuid.uuid4().hex[:8]}"

    def make(url: str, *, owner: str = default_owner, **body: Any) -> dict[str, Any]:
        headers = integrator(owner)
        response = notify.post("/v1/webhooks", json={"url": url, "event_types": [CHANGED], **body}, headers=headers)
        assert response.status_code == 201, response.text
        made.append((response.json()["id"], headers))
        return response.json()

    yield make
    for webhook_id, headers in made:
        notify.delete(f"/v1/webhooks/{webhook_id}", headers=headers)


def deliveries(notify: TestClient, webhook: dict[str, Any], **params: Any) -> list[Any]:
    """Every delivery of the webhook (one page is enough here)."""
    response = notify.get(f"/v1/webhooks/{webhook['id']}/deliveries", params=params, headers=webhook["headers"])
    assert response.status_code == 200, response.text
    return response.json()["items"]


def verify(secret: str, headers: dict[str, str], body: bytes) -> bool:
    """The README's recipe: v1= and the hex HMAC-SHA256 of "{webhook-timestamp}.{body}" under the secret."""
    signed = headers["webhook-timestamp"].encode() + b"." + body
    expected = "v1=" + hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, headers["webhook-signature"])


def owned(register: Register, url: str, **body: Any) -> dict[str, Any]:
    """Register under a fresh owner and remember its headers for later calls."""
    owner = f"integrator-{uuid.uuid4().hex[:8]}"
    return {**register(url, owner=owner, **body), "headers": integrator(owner)}


def test_a_matching_status_change_arrives_signed_as_a_cloudevent(
    notify: TestClient, events: Events, receiver: Receiver, register: Register
) -> None:
    webhook = owned(register, receiver.url, katotth=["UA80"])
    assert webhook["secret"].startswith("whsec_") and webhook["enabled"]
    point = events.point()
    message = events.status(point, OpenState.open)

    post = eventually(lambda: receiver.posts(), "the receiver gets the delivery")[0]
    assert verify(webhook["secret"], post.headers, post.body)
    assert not verify("whsec_another", post.headers, post.body)
    assert post.headers["content-type"].startswith("application/cloudevents+json")
    event = json.loads(post.body)
    assert event["specversion"] == "1.0" and event["type"] == CHANGED and event["id"] == message.event_id
    assert event["subject"] == str(point.id) and event["datacontenttype"] == "application/json"
    assert event["data"]["point_id"] == str(point.id) and event["data"]["state"] == "open"

    [delivery] = eventually(
        lambda: [d for d in deliveries(notify, webhook) if d["state"] == "delivered"], "delivered recorded"
    )
    assert delivery["id"] == post.headers["webhook-id"] and delivery["attempts"] == 1
    assert delivery["last_status"] == 204 and delivery["event_id"] == message.event_id
    metrics = samples(notify.get("/metrics").text)
    assert metrics.get(("poi_webhook_deliveries_total", (("outcome", "delivered"),)), 0) >= 1
    # The secret is shown once: reading the webhook back never shows it.
    assert "secret" not in notify.get(f"/v1/webhooks/{webhook['id']}", headers=webhook["headers"]).json()


def test_filters_choose_event_types_and_areas_and_hidden_points_never_go_out(
    notify: TestClient, events: Events, receiver: Receiver, register: Register
) -> None:
    kyiv = events.point()  # UA80, 50.45 30.52
    lviv = events.point(katotth="UA46060250010015970", lat=49.8397, lon=24.0297)
    hidden = events.point(visibility=Visibility.hidden)
    by_prefix = owned(register, receiver.url, katotth=["UA46"])
    by_disk = owned(register, receiver.url, area={"lat": 50.45, "lon": 30.52, "radius_m": 5000})
    both = owned(register, receiver.url, katotth=["UA46"], area={"lat": 50.45, "lon": 30.52, "radius_m": 5000})
    low_fuel_only = owned(register, receiver.url, event_types=[STATUS_LOW_FUEL.type])
    everything = owned(register, receiver.url, event_types=ALL_TYPES)

    for point in (kyiv, lviv, hidden):
        events.status(point)
    events.status(kyiv, event_type=STATUS_LOW_FUEL)
    # The catch-all webhook gets the last event only after the consumer handled every earlier one, in order.
    eventually(lambda: len(deliveries(notify, everything)) == 3, "every non-hidden event queued for the catch-all")
    assert [d["event_type"] for d in deliveries(notify, by_prefix)] == [CHANGED]
    assert [d["event_type"] for d in deliveries(notify, by_disk)] == [CHANGED]
    assert len(deliveries(notify, both)) == 2  # either the prefix or the disk matches
    assert [d["event_type"] for d in deliveries(notify, low_fuel_only)] == [STATUS_LOW_FUEL.type]
    posted = eventually(lambda: len(receiver.posts()) >= 7 and receiver.posts(), "all deliveries arrive")
    subjects = {json.loads(p.body)["subject"] for p in posted}
    assert str(hidden.id) not in subjects and {str(kyiv.id), str(lviv.id)} == subjects


def test_a_status_event_before_its_points_registration_waits_for_it(
    notify: TestClient, events: Events, receiver: Receiver, register: Register
) -> None:
    webhook = owned(register, receiver.url, katotth=["UA80"])
    early, hidden = events.point(publish=False), events.point(publish=False, visibility=Visibility.hidden)
    message = events.status(early)
    events.status(hidden)
    later = events.point()
    events.status(later)  # handled after the two earlier ones: they are waiting now
    eventually(lambda: len(deliveries(notify, webhook)) == 1, "the known point's event delivered")
    events.register(hidden)
    events.register(early)
    eventually(
        lambda: any(d["event_id"] == message.event_id for d in deliveries(notify, webhook)), "the early event queued"
    )
    eventually(lambda: len(receiver.posts()) == 2, "both delivered")
    assert {json.loads(p.body)["subject"] for p in receiver.posts()} == {str(early.id), str(later.id)}
    assert len(deliveries(notify, webhook)) == 2  # the hidden point's event is never queued


def test_a_failing_endpoint_is_retried_with_the_same_delivery_until_it_answers(
    notify: TestClient, events: Events, receiver: Receiver, register: Register
) -> None:
    webhook = owned(register, receiver.url, katotth=["UA80"])
    receiver.fail(MAX_ATTEMPTS - 1, status=503)
    events.status(events.point())

    [delivery] = eventually(
        lambda: [d for d in deliveries(notify, webhook) if d["state"] == "delivered"], "delivered after retries"
    )
    posts = receiver.posts()
    assert delivery["attempts"] == MAX_ATTEMPTS == len(posts)
    assert {p.headers["webhook-id"] for p in posts} == {delivery["id"]}
    assert len({p.body for p in posts}) == 1  # the same bytes every time; each signed for its own timestamp
    assert all(verify(webhook["secret"], p.headers, p.body) for p in posts)


def test_dead_letters_after_the_bound_and_replay_sends_them_again(
    notify: TestClient, events: Events, receiver: Receiver, register: Register
) -> None:
    webhook = owned(register, receiver.url, katotth=["UA80"])
    headers = webhook["headers"]
    receiver.fail(2 * MAX_ATTEMPTS, status=500)
    point = events.point()
    events.status(point, OpenState.open)
    events.status(point, OpenState.full)

    dead = eventually(lambda: len(d := deliveries(notify, webhook, state="dead")) == 2 and d, "both dead-lettered")
    assert all(d["attempts"] == MAX_ATTEMPTS and d["last_status"] == 500 for d in dead)
    assert all(d["next_attempt_at"] is None for d in dead)
    assert len(receiver.posts()) == 2 * MAX_ATTEMPTS
    metrics = samples(notify.get("/metrics").text)
    assert metrics.get(("poi_webhook_deliveries_total", (("outcome", "dead"),)), 0) >= 2

    # The endpoint is fixed: one delivery replayed by id, then the rest of the dead letters at once.
    replayed = notify.post(f"/v1/webhooks/{webhook['id']}/deliveries/{dead[0]['id']}/replay", headers=headers)
    assert replayed.status_code == 202 and replayed.json()["state"] == "pending"
    eventually(lambda: len(deliveries(notify, webhook, state="delivered")) == 1, "the replayed one delivered")
    rest = notify.post(f"/v1/webhooks/{webhook['id']}/deliveries/replay-dead-letters", headers=headers)
    assert rest.status_code == 202 and rest.json() == {"replayed": 1}
    eventually(lambda: len(deliveries(notify, webhook, state="delivered")) == 2, "every dead letter delivered")
    assert receiver.posts()[-1].headers["webhook-id"] in {d["id"] for d in dead}

    unknown = notify.post(f"/v1/webhooks/{webhook['id']}/deliveries/{uuid.uuid4()}/replay", headers=headers)
    assert_problem(unknown, 404)


def test_an_endpoint_whose_deliveries_all_go_dead_is_switched_off_until_its_integrator_switches_it_on(
    notify: TestClient, events: Events, receiver: Receiver, register: Register
) -> None:
    webhook = owned(register, receiver.url, katotth=["UA80"])
    path, headers = f"/v1/webhooks/{webhook['id']}", webhook["headers"]
    receiver.fail(DISABLE_AFTER_DEAD * MAX_ATTEMPTS, status=500)
    point = events.point()
    for state in (OpenState.open, OpenState.full, OpenState.closed)[:DISABLE_AFTER_DEAD]:
        events.status(point, state)

    off = eventually(lambda: (w := notify.get(path, headers=headers).json())["enabled"] is False and w, "off")
    assert f"its last {DISABLE_AFTER_DEAD} deliveries all failed" in off["disabled_reason"]
    assert len(deliveries(notify, webhook, state="dead")) == DISABLE_AFTER_DEAD
    # While it is off nothing new is queued for it, as when its integrator switches it off (tested below).
    on = notify.patch(path, json={"enabled": True}, headers=headers)
    assert on.status_code == 200 and on.json()["enabled"] is True and on.json()["disabled_reason"] is None
    replayed = notify.post(f"{path}/deliveries/replay-dead-letters", headers=headers)
    assert replayed.json() == {"replayed": DISABLE_AFTER_DEAD}
    eventually(lambda: len(deliveries(notify, webhook, state="delivered")) == DISABLE_AFTER_DEAD, "all delivered")
    assert len(deliveries(notify, webhook)) == DISABLE_AFTER_DEAD


def test_a_redelivered_event_is_queued_once_and_a_disabled_webhook_queues_nothing(
    notify: TestClient, events: Events, receiver: Receiver, register: Register
) -> None:
    webhook = owned(register, receiver.url, katotth=["UA80"])
    everything = owned(register, receiver.url)
    headers = webhook["headers"]
    point = events.point()
    message = events.status(point)
    events.repeat(message)
    events.status(point, OpenState.closed)  # a later event: once it is queued, the repeat was handled
    eventually(lambda: len(deliveries(notify, everything)) == 2, "the catch-all has both events")
    assert len(deliveries(notify, webhook)) == 2

    off = notify.patch(f"/v1/webhooks/{webhook['id']}", json={"enabled": False}, headers=headers)
    assert off.status_code == 200 and off.json()["enabled"] is False
    events.status(point, OpenState.open)
    eventually(lambda: len(deliveries(notify, everything)) == 3, "the catch-all has the third event")
    assert len(deliveries(notify, webhook)) == 2


def test_only_integrators_manage_webhooks_and_only_their_own(
    notify: TestClient, receiver: Receiver, register: Register, bearer: Callable[..., dict[str, str]]
) -> None:
    body = {"url": receiver.url, "event_types": [CHANGED]}
    assert_problem(notify.post("/v1/webhooks", json=body), 401)
    for roles in (("admin",), ("coordinator",)):
        kwargs = {"katotth": ["UA80"]} if "coordinator" in roles else {}
        forbidden = notify.post("/v1/webhooks", json=body, headers=bearer(*roles, **kwargs))
        assert "integrator" in assert_problem(forbidden, 403)["detail"]
        assert_problem(notify.get("/v1/webhooks", headers=bearer(*roles, **kwargs)), 403)

    mine = owned(register, receiver.url)
    other = integrator("someone-else")
    assert notify.get("/v1/webhooks", headers=other).json()["items"] == []
    assert [w["id"] for w in notify.get("/v1/webhooks", headers=mine["headers"]).json()["items"]] == [mine["id"]]
    path = f"/v1/webhooks/{mine['id']}"
    assert_problem(notify.get(path, headers=other), 404)
    assert_problem(notify.patch(path, json={"enabled": False}, headers=other), 404)
    assert_problem(notify.get(f"{path}/deliveries", headers=other), 404)
    assert_problem(notify.post(f"{path}/deliveries/replay-dead-letters", headers=other), 404)
    assert_problem(notify.delete(path, headers=other), 404)
    assert notify.delete(path, headers=mine["headers"]).status_code == 204
    assert_problem(notify.get(path, headers=mine["headers"]), 404)


@pytest.mark.parametrize(
    ("changes", "location"),
    [
        ({"url": "http://10.1.2.3/hook"}, "body.url"),
        ({"url": "http://169.254.169.254/latest/meta-data"}, "body.url"),
        ({"url": "http://192.168.1.1/"}, "body.url"),
        ({"url": "ftp://127.0.0.1/hook"}, "body.url"),
        ({"url": "http://user:pw@127.0.0.1/hook"}, "body.url"),
        ({"url": "http://[::ffff:10.0.0.1]/hook"}, "body.url"),
        ({"url": "http://no-such-host.invalid/hook"}, "body.url"),
        ({"event_types": []}, "body.event_types"),
        ({"event_types": ["ua.poi.point.registered.v1"]}, "body.event_types.0"),
        ({"katotth": ["KYIV"]}, "body.katotth.0"),
        ({"area": {"lat": 50.45, "lon": 30.52, "radius_m": 10_000_000}}, "body.area.radius_m"),
        ({"area": {"lat": "50.45", "lon": 30.52, "radius_m": 100}}, "body.area.lat"),
        ({"secret": "mine"}, "body.secret"),
    ],
    ids=[
        "private",
        "metadata",
        "lan",
        "scheme",
        "credentials",
        "mapped-private",
        "unresolvable",
        "no-types",
        "point-type",
        "prefix",
        "radius-cap",
        "lat-string",
        "own-secret",
    ],
)
def test_bad_registrations_are_422_naming_the_field(notify: TestClient, changes: dict[str, Any], location: str) -> None:
    body = {"url": "http://127.0.0.1:9/hook", "event_types": [CHANGED], **changes}
    response = notify.post("/v1/webhooks", json=body, headers=integrator("bad-input"))
    assert_problem(response, 422, field=location)
    assert notify.get("/v1/webhooks", headers=integrator("bad-input")).json()["items"] == []


def test_old_finished_deliveries_are_forgotten_and_pending_ones_kept(
    notify: TestClient, events: Events, receiver: Receiver, register: Register
) -> None:
    webhook = owned(register, receiver.url, katotth=["UA80"])
    events.status(events.point())
    eventually(lambda: len(deliveries(notify, webhook, state="delivered")) == 1, "delivered")
    # Switched off, the webhook's queued deliveries wait: one queued now stays pending.
    assert notify.patch(f"/v1/webhooks/{webhook['id']}", json={"enabled": False}, headers=webhook["headers"]).is_success
    pool = notify.app.state.pool  # type: ignore[attr-defined]

    async def queue_age_and_prune() -> int:
        async with pool.acquire() as conn:
            await data.insert_delivery(
                conn,
                id=uuid.uuid4(),
                webhook_id=uuid.UUID(webhook["id"]),
                event_id="e-1",
                event_type=CHANGED,
                body="{}",
            )
            await conn.execute(
                "UPDATE webhook_deliveries SET created_at = now() - interval '40 days' WHERE webhook_id = $1",
                uuid.UUID(webhook["id"]),
            )
        return await data.prune_deliveries(pool, older_than_s=30 * 24 * 3600, batch=1)

    assert notify.portal is not None
    assert notify.portal.call(queue_age_and_prune) >= 1
    assert [(d["state"], d["event_id"]) for d in deliveries(notify, webhook)] == [("pending", "e-1")]


def test_a_fetch_of_events_planned_together_queues_what_one_at_a_time_would(
    infra: stack.Infrastructure,
    webhooks_namespace: str,
    notify: TestClient,
    events: Events,
    receiver: Receiver,
    register: Register,
) -> None:
    lviv_only = owned(register, receiver.url, katotth=["UA46"])
    everything = owned(register, receiver.url)
    kyiv = events.point()
    lviv = events.point(katotth="UA46060250010015970", lat=49.8397, lon=24.0297)
    hidden = events.point(visibility=Visibility.hidden)
    early = events.point(publish=False)
    for point in (kyiv, lviv, hidden):  # once the first two are queued, notify knows the points
        events.status(point)
    eventually(lambda: len(deliveries(notify, everything)) == 2, "the points are known")

    def unpublished(point: Any) -> OutgoingMessage:
        version = events.versions[point.id] = events.versions.get(point.id, 0) + 1
        now = datetime.now(UTC)
        status = StatusState(
            point_id=point.id, version=version, state=OpenState.closed, reported_at=now, reported_by="t"
        )
        return events.message(STATUS_CHANGED, str(point.id), status)

    fetched = [unpublished(p) for p in (kyiv, lviv, hidden, early, kyiv)]
    batch = [parse_message(m.headers, m.body) for m in fetched]
    batch.insert(2, batch[0])  # the same event twice in one fetch

    async def plan() -> list[Any]:
        url = (await stack.prepare_databases(infra.database_url, webhooks_namespace))["notify"]
        pool = await db.create_pool(url, timeout_s=10, min_size=1, max_size=1)
        try:
            await notify_events.handle_status_events_for_webhooks(pool, batch)
            await notify_events.handle_status_events_for_webhooks(pool, batch[:2])  # a repeat changes nothing
            return await pool.fetch("SELECT event_id FROM webhook_waiting_events")
        finally:
            await pool.close()

    waiting = asyncio.run(plan())
    queued = {d["event_id"] for d in deliveries(notify, everything)}
    assert {fetched[0].event_id, fetched[1].event_id, fetched[4].event_id} <= queued
    assert fetched[2].event_id not in queued and fetched[3].event_id not in queued  # hidden; not known yet
    assert len(deliveries(notify, everything)) == 5
    assert [d["event_id"] for d in deliveries(notify, lviv_only)][-1] == fetched[1].event_id
    assert fetched[3].event_id in {row["event_id"] for row in waiting}, "the unknown point's event waits for it"
