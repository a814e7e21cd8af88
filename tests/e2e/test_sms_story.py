"""The SMS story through the four services as processes and a real Kannel (bearerbox, smsbox, fakesmsc).

subscribe to an area → the code arrives at the SMSC → the code texted back confirms → a coordinator activates the
area → the alert naming the open point arrives in Ukrainian → its delivery report is recorded → a lookup texted
from the SMSC gets its reply → СТОП → the next activation sends that number nothing.
"""

from collections.abc import Iterator
from uuid import UUID

import httpx
import pytest

from poi_cli import stack
from tests.faults.conftest import FaultStack, eventually, register
from tests.faults.sms import fetch, messages_to, sms_stack, subscribe_and_confirm, switch
from tests.support import kannel

pytestmark = pytest.mark.e2e
RESIDENT = "+380671234501"
BARRIER = "+380671234502"


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
