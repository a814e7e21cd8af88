"""One story through the running services moves each service's series; no log line holds a token or personal data."""

import time
import uuid
from pathlib import Path

import httpx
import pytest

from poi_shared.auth import issue_token
from tests.e2e.conftest import SECRET, RunningStack
from tests.e2e.test_slice import POINT, eventually, find_in_search
from tests.prometheus import samples

pytestmark = pytest.mark.e2e
SUBJECT = "olena.ivanenko@example.ua"  # an operator's account: who did what belongs in history, not in logs
CONTACT_PHONE = "+380671234567"  # a point's private contact
STRANGER_TOKEN = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.forged-signature-abcdefghijklmnop"


def totals(client: httpx.Client, services: RunningStack) -> dict[str, dict[str, float]]:
    """For each service, every series summed over its labels."""
    found: dict[str, dict[str, float]] = {}
    for service, url in services.urls.items():
        response = client.get(f"{url}/metrics")
        assert response.status_code == 200
        sums: dict[str, float] = {}
        for (name, _), value in samples(response.text).items():
            sums[name] = sums.get(name, 0.0) + value
        found[service] = sums
    return found


def test_a_story_moves_every_service_series_and_leaves_no_secret_in_the_logs(services: RunningStack) -> None:
    admin = issue_token(SECRET, subject=SUBJECT, roles=["admin"])
    headers = {"Authorization": f"Bearer {admin}"}
    with httpx.Client(timeout=10) as client:
        before = totals(client, services)
        created = client.post(
            f"{services.urls['registry']}/v1/points",
            json={**POINT, "contact_phone": CONTACT_PHONE},
            headers=headers,
        )
        assert created.status_code == 201, created.text
        point_id = created.json()["id"]

        def report() -> httpx.Response | None:
            response = client.post(
                f"{services.urls['status']}/v1/points/{point_id}/status",
                json={"state": "open", "note": f"телефон {CONTACT_PHONE}"},
                headers={**headers, "Idempotency-Key": str(uuid.uuid4())},
            )
            return response if response.status_code != 404 else None

        assert eventually(report, "status learns the point").status_code == 201
        eventually(
            lambda: (hit := find_in_search(client, services, point_id)) and hit["status"]["state"] == "open",
            "search shows the point open",
        )
        assert (
            client.get(
                f"{services.urls['notify']}/v1/observations", params={"point_id": point_id}, headers=headers
            ).status_code
            == 200
        )
        # Refusals log too: a forged token, a bad body carrying the phone.
        forged = client.post(
            f"{services.urls['registry']}/v1/points", json=POINT, headers={"Authorization": f"Bearer {STRANGER_TOKEN}"}
        )
        assert forged.status_code == 401
        bad = client.post(
            f"{services.urls['registry']}/v1/points",
            json={**POINT, "contact_phone": f"{CONTACT_PHONE}x"},
            headers=headers,
        )
        assert bad.status_code == 422
        after = totals(client, services)

    def moved(service: str, series: str) -> bool:
        return after[service].get(series, 0.0) > before[service].get(series, 0.0)

    for service in ("registry", "status", "search", "notify"):
        assert moved(service, "poi_http_requests_total"), service
        assert moved(service, "poi_http_request_duration_seconds_count"), service
    assert moved("search", "poi_search_points") or after["search"]["poi_search_points"] > 0
    assert moved("search", "poi_search_event_visible_seconds_count")
    assert after["status"]["poi_nats_connected"] == 1 and after["notify"]["poi_nats_connected"] == 1

    assert services.logs is not None
    time.sleep(0.5)  # let the processes write their last lines
    leaks = {
        "a bearer token": admin,
        "a forged token": STRANGER_TOKEN,
        "an Authorization header": "Bearer ",
        "the operator's account": SUBJECT,
        "a phone number": CONTACT_PHONE.removeprefix("+"),
    }
    logs = sorted(Path(services.logs).glob("*.log"))
    assert len(logs) == 4 and all(log.stat().st_size for log in logs)
    for log in logs:
        text = log.read_text(errors="replace")
        for what, needle in leaks.items():
            assert needle not in text, f"{log.name} holds {what}"
