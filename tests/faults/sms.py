"""The four services as processes with notify sending through a real Kannel (bearerbox, smsbox, fakesmsc)."""

import asyncio
import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import asyncpg
import httpx
import pytest

from poi_cli import embedded, stack
from poi_shared.auth import issue_token
from tests.faults.conftest import SECRET, FaultStack, eventually, fault_stack
from tests.support import kannel

GATEWAY_TOKEN = "test-gateway-token"
CONNECT_TRIES = 60
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
        "WEBHOOK_ALLOW_LOOPBACK_HTTP": "true",
        "WEBHOOK_POLL_S": "0.2",
    }


@contextmanager
def sms_stack(infra: stack.Infrastructure, namespace: str, **notify: str) -> Iterator[tuple[FaultStack, kannel.Kannel]]:
    """Kannel sending to fakesmsc and bringing residents' SMS to notify; the four services (notify: more settings)."""
    if not kannel.installed():
        pytest.skip(kannel.NOT_INSTALLED)
    ports = {name: embedded.free_port() for name in stack.SERVICE_PORTS}
    inbound = f"http://127.0.0.1:{ports['notify']}/v1/sms/inbound?token={GATEWAY_TOKEN}"
    with tempfile.TemporaryDirectory(prefix="poi-test-kannel-") as tmp:
        with kannel.kannel(Path(tmp), inbound_url=inbound) as gateway:
            # Small pools: the PostgreSQL server is shared.
            env = {service: {"DB_POOL_MAX": "3"} for service in stack.SERVICE_PORTS}
            env["notify"] = {**sms_env(gateway, ports["notify"], ports["search"]), "DB_POOL_MAX": "6", **notify}
            with fault_stack(infra, namespace, ports=ports, extra_env=env) as running:
                yield running, gateway


def fetch(url: str, query: str, *args: object) -> list[asyncpg.Record]:
    """Rows from one of the stack's databases."""

    async def run() -> list[asyncpg.Record]:
        # The server is shared with other test sessions: a moment with every connection taken is waited out.
        for _ in range(CONNECT_TRIES):
            try:
                conn = await asyncpg.connect(url)
                break
            except asyncpg.TooManyConnectionsError:
                await asyncio.sleep(0.5)
        else:
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
