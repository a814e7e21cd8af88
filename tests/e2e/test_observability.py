"""Every service, run as a process, serves /metrics and an honest /readyz; search says how old its data is."""

import uuid

import httpx
import pytest

from poi_notify.events import STATUS_CONSUMER
from poi_shared.contracts import POINTS, STATUS
from poi_status.events import POINTS_CONSUMER
from tests.e2e.conftest import RunningStack
from tests.prometheus import samples

pytestmark = pytest.mark.e2e

HTTP_SERIES = {"poi_http_requests_total", "poi_http_request_duration_seconds_bucket", "poi_nats_connected"}
SERIES = {
    "registry": HTTP_SERIES | {"poi_outbox_pending_messages", "poi_outbox_oldest_age_seconds"},
    "status": HTTP_SERIES
    | {
        "poi_outbox_pending_messages",
        "poi_outbox_oldest_age_seconds",
        "poi_consumer_pending_messages",
        "poi_consumer_ack_pending_messages",
        "poi_consumer_redelivered_messages",
        "poi_dead_letters",
    },
    "search": HTTP_SERIES | {"poi_search_points", "poi_search_statuses", "poi_search_data_age_seconds"},
    "notify": HTTP_SERIES
    | {
        "poi_consumer_pending_messages",
        "poi_consumer_ack_pending_messages",
        "poi_consumer_redelivered_messages",
        "poi_dead_letters",
    },
}
CONSUMERS = {"status": (POINTS, POINTS_CONSUMER), "notify": (STATUS, STATUS_CONSUMER)}


def scrape(client: httpx.Client, url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = client.get(f"{url}/metrics")
    assert response.status_code == 200
    return samples(response.text)


@pytest.mark.parametrize("service", sorted(SERIES))
def test_every_service_exposes_its_series(services: RunningStack, service: str) -> None:
    with httpx.Client(timeout=10) as client:
        found = scrape(client, services.urls[service])
    names = {name for name, _ in found}
    assert SERIES[service] <= names, f"missing: {sorted(SERIES[service] - names)}"
    assert found[("poi_nats_connected", ())] == 1
    if service in CONSUMERS:
        stream, durable = CONSUMERS[service]
        labels = (("consumer", durable), ("stream", stream.stream_name(services.namespace)))
        assert ("poi_consumer_pending_messages", labels) in found
        assert ("poi_dead_letters", (("consumer", durable),)) in found


@pytest.mark.parametrize("service", ["registry", "status", "search", "notify"])
def test_every_service_is_ready_and_reports_the_broker(services: RunningStack, service: str) -> None:
    with httpx.Client(timeout=3) as client:  # the Kubernetes probe's timeout
        ready = client.get(f"{services.urls[service]}/readyz")
    assert ready.status_code == 200, ready.text
    body = ready.json()
    assert body["status"] == "ready" and body["checks"]["nats"] == "ok"
    if service in CONSUMERS:
        assert CONSUMERS[service][1] in body["consumers"]
    if service == "search":
        assert body["checks"]["catalog"] == "ok" and body["data_age_s"] >= 0
    else:
        assert body["checks"]["postgresql"] == "ok"


def test_a_request_moves_the_counter_of_its_route(services: RunningStack) -> None:
    labels = (("method", "GET"), ("route", "/v1/points/{point_id}"), ("status_class", "4xx"))
    key = ("poi_http_requests_total", labels)
    with httpx.Client(timeout=10) as client:
        before = scrape(client, services.urls["registry"]).get(key, 0)
        missing = client.get(f"{services.urls['registry']}/v1/points/{uuid.uuid4()}")
        assert missing.status_code == 404
        after = scrape(client, services.urls["registry"])
    assert after[key] == before + 1


def test_search_answers_say_how_old_the_data_is(services: RunningStack) -> None:
    with httpx.Client(timeout=10) as client:
        response = client.get(f"{services.urls['search']}/v1/search/nearest", params={"lat": 50.45, "lon": 30.52})
    assert response.status_code == 200
    assert int(response.headers["x-data-age"]) >= 0
    assert response.json()["data_age_s"] >= int(response.headers["x-data-age"])
