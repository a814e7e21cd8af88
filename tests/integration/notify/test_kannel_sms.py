"""SMS end to end through a real Kannel (bearerbox, smsbox, fakesmsc as the SMSC) and notify over HTTP.

subscribe → the code arrives at the SMSC → the resident replies with it from the SMSC → confirmed → an alert
arrives with its Ukrainian text and its delivery report is recorded → СТОП from the SMSC → nothing more.
"""

import asyncio
import re
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
import pytest_asyncio
import uvicorn

from poi_cli import stack
from poi_cli.embedded import free_port
from poi_notify import data
from poi_notify.app import create_app
from poi_notify.phones.service import phone_hash
from poi_notify.settings import NotifySettings
from poi_notify.sms import service as sms
from tests.integration.notify.conftest import KEY
from tests.support import kannel

pytestmark = pytest.mark.integration
BOUND_S = 60.0
TOKEN = "test-gateway-token"
ALERT = "Відкрито пункт: вул. Хрещатик, 1. Тепло, зарядка"


@pytest_asyncio.fixture
async def notify_and_kannel(
    infra: stack.Infrastructure, namespace: str, notify_database_url: str, tmp_path: Path
) -> AsyncIterator[tuple[httpx.AsyncClient, kannel.Kannel]]:
    """Notify served on a loopback port, sending through Kannel, which sends residents' SMS back to it."""
    if not kannel.installed():
        pytest.skip(kannel.NOT_INSTALLED)
    port = free_port()
    inbound = f"http://127.0.0.1:{port}/v1/sms/inbound?token={TOKEN}"
    with kannel.kannel(tmp_path / "kannel", inbound_url=inbound) as gateway:
        settings = NotifySettings(
            database_url=notify_database_url,
            redis_url=infra.redis_url,
            nats_url=infra.nats_url,
            namespace=namespace,
            phone_key="test-phone-key",
            kannel_url=gateway.sendsms_url.removesuffix("/cgi-bin/sendsms"),
            kannel_username=kannel.LOGIN[0],
            kannel_password=kannel.LOGIN[1],
            gateway_callback_url=f"http://127.0.0.1:{port}",
            gateway_token=TOKEN,
            sms_idle_poll_s=0.05,
        )
        server = uvicorn.Server(
            uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_config=None, access_log=False)
        )
        serving = asyncio.create_task(server.serve())
        try:
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
                await eventually(lambda: server.started, "notify serves")
                yield client, gateway
        finally:
            server.should_exit = True
            await serving


async def eventually(probe: Callable[[], Any], what: str) -> Any:
    """Poll probe (sync or async) until it gives something truthy."""
    deadline = asyncio.get_running_loop().time() + BOUND_S
    while asyncio.get_running_loop().time() < deadline:
        result = probe()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return result
        await asyncio.sleep(0.05)
    raise AssertionError(f"{what} did not happen within {BOUND_S:.0f} s")


async def state_of(client: httpx.AsyncClient, id: str) -> str:
    return (await client.get(f"/v1/subscriptions/{id}")).json()["state"]


async def test_subscribe_confirm_alert_and_stop_through_kannel(
    notify_and_kannel: tuple[httpx.AsyncClient, kannel.Kannel], notify_database_url: str
) -> None:
    client, gateway = notify_and_kannel
    e164 = "+380671234567"
    hashed = phone_hash(KEY, e164)
    area = {"lat": 50.4501, "lon": 30.5234, "radius_m": 2000}
    accepted = await client.post("/v1/subscriptions", json={"phone": e164, "language": "uk", "area": area})
    assert accepted.status_code == 202, accepted.text
    id = accepted.json()["id"]

    # The code arrives at the SMSC, in Ukrainian (UCS-2); the resident texts it back.
    (code_sms,) = await eventually(lambda: gateway.received_by(e164), "the code reaches the SMSC")
    code = re.fullmatch(r"Пункти незламності: код ([0-9]{6})\. Не ви\? Ігноруйте", code_sms)
    assert code, code_sms
    assert await state_of(client, id) == "pending"
    with gateway.texting(e164, code.group(1)):
        await eventually(lambda: _is(state_of(client, id), "active"), "the texted code confirms")
    await eventually(
        lambda: "Підписку підтверджено. СТОП - вимкнути всі SMS" in gateway.received_by(e164), "the confirmation"
    )

    # An alert (as alert planning queues it) arrives with its exact text; Kannel's delivery reports are recorded.
    pool = await asyncpg.create_pool(notify_database_url, min_size=1, max_size=2)
    try:
        async with pool.acquire() as conn, conn.transaction():
            alert_id = await sms.enqueue(conn, phone_hash=hashed, kind="alert", body=ALERT, dedup_key="e2e-alert-1")
        assert alert_id is not None
        await eventually(lambda: ALERT in gateway.received_by(e164), "the alert reaches the SMSC")

        async def delivered() -> bool:
            rows = {r["id"]: r for r in await data.sms_of_phone(pool, hashed)}
            return (rows[alert_id]["state"], rows[alert_id]["dlr_type"]) == ("delivered", 1)

        await eventually(delivered, "the delivery report is recorded")

        # СТОП from the phone: one acknowledgement, then nothing.
        with gateway.texting(e164, "СТОП"):
            await eventually(lambda: _is(state_of(client, id), "stopped"), "СТОП stops the number")
        await eventually(
            lambda: "SMS вимкнено. START - увімкнути знову" in gateway.received_by(e164), "the STOP acknowledgement"
        )
        count = len(gateway.received_by(e164))
        async with pool.acquire() as conn, conn.transaction():
            refused = await sms.enqueue(conn, phone_hash=hashed, kind="alert", body=ALERT, dedup_key="e2e-alert-2")
        assert refused is None
        # A barrier: a later message to another number arrives, so anything queued before it went out too.
        other = "+380931234567"
        assert (await client.post("/v1/subscriptions", json={"phone": other, "area": area})).status_code == 202
        await eventually(lambda: gateway.received_by(other), "the other number's code")
        assert len(gateway.received_by(e164)) == count
        states = [(r["kind"], r["state"]) for r in await data.sms_of_phone(pool, hashed)]
        assert states[-1][0] == "reply" and states[-1][1] in {"sent", "delivered"} and len(states) == count
    finally:
        await pool.close()


async def _is(value: Any, expected: str) -> bool:
    return (await value) == expected
