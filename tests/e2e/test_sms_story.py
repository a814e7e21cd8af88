"""The SMS story through the four services as processes and a real Kannel (bearerbox, smsbox, fakesmsc).

subscribe to an area → the code arrives at the SMSC → the code texted back confirms → a coordinator activates the
area → the alert naming the open point arrives in Ukrainian → its delivery report is recorded → a lookup texted
from the SMSC gets its reply → СТОП → the next activation sends that number nothing.
"""

import asyncio
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path
from uuid import UUID

import asyncpg
import httpx
import pytest

from poi_cli import embedded, stack
from poi_shared.auth import issue_token
from tests.faults.conftest import SECRET, FaultStack, eventually, fault_stack, register
from tests.support import kannel

pytestmark = pytest.mark.e2e
GATEWAY_TOKEN = "test-gateway-token"
RESIDENT = "+380671234501"
BARRIER = "+380671234502"
AREA = {"lat": 50.4501, "lon": 30.5234, "radius_m": 3000}


def sms_env(gateway: kannel.Kannel, notify_port: int, search_port: int) -> dict[str, str]:
    """Notify sending through the gateway, with alert windows as short as the settings allow."""
    return {
        "KANNEL_URL": gateway.sendsms_url.removesuffix("/cgi-bin/sendsms"),
        "KANNEL_USERNAME": kannel.LOGIN[0],
        "KANNEL_PASSWORD": kannel.LOGIN[1],
        "GATEWAY_CALLBACK_URL": f"http://127.0.0.1:{notify_port}",
        "GATEWAY_TOKEN": GATEWAY_TOKEN,
        "SEARCH_URL": f"http://127.0.0.1:{search_port}",
        "SMS_IDLE_POLL_S": "0.1",
        "SMS_RETRY_INITIAL_S": "0.5",
        "SMS_RETRY_MAX_S": "2",
        "ALERT_GATHER_S": "1",
        "ALERT_WINDOW_S": "60",
        "ALERT_QUIET_START": "00:00",
        "ALERT_QUIET_END": "00:00",
        "ALERT_PLAN_INTERVAL_S": "0.5",
        "ALERT_FLUSH_INTERVAL_S": "0.5",
    }


@pytest.fixture(scope="module")
def sms_stack(infra: stack.Infrastructure, namespace: str) -> Iterator[tuple[FaultStack, kannel.Kannel]]:
    """Kannel sending to fakesmsc and bringing residents' SMS to notify; the four services."""
    if not kannel.installed():
        pytest.skip(kannel.NOT_INSTALLED)
    ports = {name: embedded.free_port() for name in stack.SERVICE_PORTS}
    inbound = f"http://127.0.0.1:{ports['notify']}/v1/sms/inbound?token={GATEWAY_TOKEN}"
    with tempfile.TemporaryDirectory(prefix="poi-test-kannel-") as tmp:
        with kannel.kannel(Path(tmp), inbound_url=inbound) as gateway:
            # Small pools: the PostgreSQL server is shared.
            env = {service: {"DB_POOL_MAX": "3"} for service in stack.SERVICE_PORTS}
            env["notify"] = {**sms_env(gateway, ports["notify"], ports["search"]), "DB_POOL_MAX": "6"}
            with fault_stack(infra, f"{namespace}k", ports=ports, extra_env=env) as running:
                yield running, gateway


def fetch(url: str, query: str, *args: object) -> list[asyncpg.Record]:
    """Rows from one of the stack's databases."""

    async def run() -> list[asyncpg.Record]:
        conn = await asyncpg.connect(url)
        try:
            return await conn.fetch(query, *args)
        finally:
            await conn.close()

    return asyncio.run(run())


def messages_to(running: FaultStack, e164: str) -> list[asyncpg.Record]:
    """Notify's SMS rows for a number, oldest first."""
    return fetch(
        running.database_urls["notify"],
        """SELECT m.kind, m.state, m.dlr_type, m.body FROM sms_messages m JOIN phones p USING (phone_hash)
           WHERE p.e164 = $1 ORDER BY m.created_at""",
        e164,
    )


def subscribe_and_confirm(client: httpx.Client, running: FaultStack, gateway: kannel.Kannel, e164: str) -> None:
    """Subscribe to the area, read the code at the SMSC, text it back, see the subscription active."""
    accepted = client.post(
        f"{running.urls['notify']}/v1/subscriptions", json={"phone": e164, "language": "uk", "area": AREA}
    )
    assert accepted.status_code == 202, accepted.text
    subscription = f"{running.urls['notify']}/v1/subscriptions/{accepted.json()['id']}"
    (code_sms,) = eventually(lambda: gateway.received_by(e164), "the code reaches the SMSC")
    code = re.fullmatch(r"Пункти незламності: код ([0-9]{6})\. Не ви\? Ігноруйте", code_sms)
    assert code, code_sms
    assert client.get(subscription).json()["state"] == "pending"
    with gateway.texting(e164, code.group(1)):
        eventually(lambda: client.get(subscription).json()["state"] == "active", "the texted code confirms")
    eventually(
        lambda: "Підписку підтверджено. СТОП - вимкнути всі SMS" in gateway.received_by(e164), "the confirmation"
    )


def switch(client: httpx.Client, running: FaultStack, action: str) -> None:
    """A Kyiv coordinator switches Kyiv's on-blackout points on or off."""
    coordinator = issue_token(SECRET, subject="coordinator-kyiv", roles=["coordinator"], katotth=["UA80"])
    response = client.post(
        f"{running.urls['status']}/v1/status/areas/{action}",
        json={"katotth": ["UA80"]},
        headers={"Authorization": f"Bearer {coordinator}"},
    )
    assert response.status_code == 200, response.text
    assert response.json()["points_changed"] == 1, response.text


def test_subscribe_confirm_activate_alert_lookup_and_stop_through_kannel(
    sms_stack: tuple[FaultStack, kannel.Kannel],
) -> None:
    running, gateway = sms_stack
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
