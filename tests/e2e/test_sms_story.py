"""The SMS story through the four services as processes and a real Kannel (bearerbox, smsbox, fakesmsc).

subscribe to an area → the code arrives at the SMSC → the code texted back confirms → a coordinator activates the
area → the alert naming the open point arrives in Ukrainian → its delivery report is recorded → a lookup texted
from the SMSC gets its reply → СТОП → the next activation sends that number nothing.
"""

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from uuid import UUID, uuid4

import httpx
import pytest

from poi_cli import stack
from poi_shared.auth import issue_token
from tests.faults.conftest import SECRET, FaultStack, eventually, register
from tests.faults.sms import AREA, fetch, messages_to, sms_stack, subscribe_and_confirm, switch
from tests.prometheus import samples
from tests.support import kannel

pytestmark = pytest.mark.e2e
RESIDENT = "+380671234501"
BARRIER = "+380671234502"
SENT = "+380671234503"
WAITING = "+380671234505"


def subscribe(client: httpx.Client, running: FaultStack, e164: str) -> httpx.Response:
    return client.post(f"{running.urls['notify']}/v1/subscriptions", json={"phone": e164, "area": AREA})


@pytest.fixture(scope="module")
def story(infra: stack.Infrastructure, namespace: str) -> Iterator[tuple[FaultStack, kannel.Kannel]]:
    """The stack with Kannel, for this story alone."""
    with sms_stack(infra, f"{namespace}k") as running:
        yield running


def test_subscribe_confirm_activate_alert_lookup_and_stop_through_kannel(
    story: tuple[FaultStack, kannel.Kannel],
) -> None:
    running, gateway = story
    with httpx.Client(timeout=10) as client:
        point_id = register(client, running, schedule={"kind": "on_blackout"})
        eventually(
            lambda: fetch(
                running.database_urls["notify"], "SELECT 1 FROM alert_points WHERE id = $1 AND known", UUID(point_id)
            ),
            "notify learns the point",
        )
        subscribe_and_confirm(client, running, gateway, RESIDENT)

        # A blackout starts: the coordinator opens Kyiv's points; the resident hears of the nearest one, in Ukrainian.
        switch(client, running, "activate")
        alert = eventually(
            lambda: [t for t in gateway.received_by(RESIDENT) if t.startswith("Відкрито поруч:")], "the alert"
        )
        assert alert == ["Відкрито поруч: Ліцей №7, вул. Хрещатик, 7, Київ (тепло, зарядка)"], alert
        eventually(
            lambda: [m for m in messages_to(running, RESIDENT) if m["kind"] == "alert" and m["state"] == "delivered"],
            "the alert's delivery report is recorded",
        )

        # A lookup from the basic phone: the nearest open point comes back by SMS.
        eventually(
            lambda: client.get(
                f"{running.urls['search']}/v1/search/nearest", params={"lat": 50.45, "lon": 30.52}
            ).json()["items"],
            "search shows the point",
        )
        before = len(gateway.received_by(RESIDENT))
        with gateway.texting(RESIDENT, "Київ ТЕПЛО"):
            replies = eventually(lambda: gateway.received_by(RESIDENT)[before:], "the lookup's reply")
        assert any("Хрещатик, 7" in reply for reply in replies), replies

        # СТОП: one acknowledgement, then nothing, even when the area switches on again.
        with gateway.texting(RESIDENT, "СТОП"):
            eventually(
                lambda: "SMS вимкнено. START - увімкнути знову" in gateway.received_by(RESIDENT), "the STOP answer"
            )
        count, rows = len(gateway.received_by(RESIDENT)), len(messages_to(running, RESIDENT))
        subscribe_and_confirm(client, running, gateway, BARRIER)  # a number that still listens, as a barrier
        switch(client, running, "deactivate")
        switch(client, running, "activate")
        eventually(
            lambda: any(t.startswith("Відкрито поруч:") for t in gateway.received_by(BARRIER)), "the barrier's alert"
        )
        # The resident's window (if one was opened) is due at most a window after the first alert: wait it out.
        eventually(
            lambda: (
                not fetch(
                    running.database_urls["notify"],
                    """SELECT 1 FROM alert_windows w JOIN phones p USING (phone_hash)
                   WHERE p.e164 = $1 AND w.flushed_at IS NULL
                   UNION ALL SELECT 1 FROM alert_queue LIMIT 1""",
                    RESIDENT,
                )
            ),
            "the resident's window is settled",
            bound_s=120,
        )
        assert len(gateway.received_by(RESIDENT)) == count
        assert len(messages_to(running, RESIDENT)) == rows


def notify_totals(client: httpx.Client, running: FaultStack) -> dict[str, float]:
    """Notify's series, each summed over its labels."""
    response = client.get(f"{running.urls['notify']}/metrics")
    assert response.status_code == 200
    sums: dict[str, float] = {}
    for (name, _), value in samples(response.text).items():
        sums[name] = sums.get(name, 0.0) + value
    return sums


@contextmanager
def receiver() -> Iterator[tuple[str, list[bytes]]]:
    """An integrator's endpoint on loopback that accepts every POST; its URL and the bodies it got."""
    bodies: list[bytes] = []

    class Endpoint(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            bodies.append(self.rfile.read(int(self.headers.get("content-length", 0))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Endpoint)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hook", bodies
    finally:
        server.shutdown()
        server.server_close()


def test_sms_and_webhook_series_move_and_no_phone_number_is_logged(story: tuple[FaultStack, kannel.Kannel]) -> None:
    running, gateway = story
    with httpx.Client(timeout=10) as client, receiver() as (url, bodies):
        before = notify_totals(client, running)
        integrator = {"Authorization": f"Bearer {issue_token(SECRET, subject='integrator-1', roles=['integrator'])}"}
        hook = client.post(
            f"{running.urls['notify']}/v1/webhooks",
            json={"url": url, "event_types": ["ua.poi.status.changed.v1"]},
            headers=integrator,
        )
        assert hook.status_code == 201, hook.text

        # Sent: a code. Throttled: the gateway is down, the code waits. (Failed, a gateway's 4xx, is only shown to
        # exist: this Kannel refuses no number; tests/integration/notify covers the refusal.)
        assert subscribe(client, running, SENT).status_code == 202
        eventually(lambda: gateway.received_by(SENT), "the code reaches the SMSC")
        gateway.stop()
        try:
            assert subscribe(client, running, WAITING).status_code == 202
            eventually(lambda: notify_totals(client, running)["poi_sms_throttled_total"] > 0, "the sender waits")
        finally:
            gateway.start()
        eventually(lambda: gateway.received_by(WAITING), "the waiting code goes once the gateway is back")

        # Webhooks: a report on a point reaches the integrator's endpoint.
        point_id = register(client, running, name_uk="Пункт незламності — Бібліотека")
        report = client.post(
            f"{running.urls['status']}/v1/points/{point_id}/status",
            json={"state": "open", "occupancy": 3},
            headers={**running.headers("admin"), "Idempotency-Key": str(uuid4())},
        )
        assert report.status_code == 201, report.text
        eventually(lambda: any(point_id.encode() in body for body in bodies), "the webhook delivery")
        after = eventually(
            lambda: (
                (totals := notify_totals(client, running))["poi_webhook_deliveries_total"]
                > before.get("poi_webhook_deliveries_total", 0.0)
                and totals
            ),
            "the delivery is counted",
        )

    for series in ("poi_sms_sent_total", "poi_sms_throttled_total"):
        assert after[series] > before.get(series, 0.0), series
    assert "poi_sms_failed_total" in after

    # No number this module texted or subscribed is in any service's log, in international or national form.
    time.sleep(0.5)  # let the processes write their last lines
    logs = sorted((running.root / "logs").glob("*.log"))
    assert {"registry", "status", "search", "notify"} <= {log.stem for log in logs}
    for log in logs:
        text = log.read_text(errors="replace")
        for e164 in (RESIDENT, BARRIER, SENT, WAITING):
            national = "0" + e164.removeprefix("+380")
            assert e164.removeprefix("+") not in text and national not in text, f"{log.name} holds {e164}"
