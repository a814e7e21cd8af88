"""One OpenTelemetry trace per story: an operator's report, the outbox relay, search's update and notify's SMS.

The four apps run in process in a namespace of their own, with an in-memory span exporter. The report carries a
sampled W3C traceparent (as a traced gateway would send), so every span of the story is recorded; the test then
walks the recorded spans' parent links from the SMS send span up to the status request.
"""

import asyncio
import contextlib
import uuid
from collections.abc import Iterator

import pytest
import redis
from fastapi.testclient import TestClient
from opentelemetry import trace
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from poi_cli import stack
from poi_notify.app import create_app as create_notify
from poi_registry.app import create_app as create_registry
from poi_registry.settings import RegistrySettings
from poi_search.app import create_app as create_search
from poi_search.settings import SearchSettings
from poi_status.app import create_app as create_status
from poi_status.settings import StatusSettings
from tests.conftest import drop_namespace
from tests.integration.routes.conftest import POINT, Bearer, eventually, notify_settings, serve
from tests.integration.routes.test_notify_subscriptions import last_code, messages, new_number

pytestmark = pytest.mark.integration


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    """Every span ended in this process while the test runs."""
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):  # no app made one yet in this session
        provider = TracerProvider()
        trace.set_tracer_provider(provider)
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield exporter
    exporter.shutdown()  # the processor stays but exports nothing more


@pytest.fixture
def story_apps(infra: stack.Infrastructure, namespace: str) -> Iterator[tuple[dict[str, TestClient], dict[str, str]]]:
    """Registry, status (its requests traced), search and notify (alerts at once), in a namespace of their own."""
    ns = f"{namespace}t"
    urls = asyncio.run(stack.prepare_databases(infra.database_url, ns))
    common = {"nats_url": infra.nats_url, "namespace": ns, "db_pool_max": 2}  # the server is shared: small pools
    status = create_status(StatusSettings(database_url=urls["status"], redis_url=infra.redis_url, **common))
    FastAPIInstrumentor.instrument_app(status, excluded_urls="livez,readyz", exclude_spans=["receive", "send"])
    apps = {
        "registry": create_registry(
            RegistrySettings(database_url=urls["registry"], nats_url=infra.nats_url, namespace=ns)
        ),
        "status": status,
        "search": create_search(SearchSettings(nats_url=infra.nats_url, namespace=ns)),
        "notify": create_notify(
            notify_settings(infra, ns, urls, alert_gather_s=0, alert_plan_interval_s=0.1, alert_flush_interval_s=0.1)
        ),
    }
    try:
        with contextlib.ExitStack() as running:
            yield (
                {name: running.enter_context(contextlib.contextmanager(serve)(app)) for name, app in apps.items()},
                urls,
            )
    finally:
        asyncio.run(drop_namespace(infra, ns))
        cache = redis.Redis.from_url(infra.redis_url)
        try:
            for key in cache.scan_iter(f"{ns}:*"):
                cache.delete(key)
        finally:
            cache.close()


def chain(span: ReadableSpan, by_id: dict[int, ReadableSpan]) -> list[ReadableSpan]:
    """The span and its recorded ancestors, nearest first."""
    found = [span]
    while found[-1].parent is not None and found[-1].parent.span_id in by_id:
        found.append(by_id[found[-1].parent.span_id])
    return found


def test_one_trace_from_an_operators_report_to_the_sms_it_causes(
    story_apps: tuple[dict[str, TestClient], dict[str, str]], spans: InMemorySpanExporter, bearer: Bearer
) -> None:
    clients, urls = story_apps
    registry, status, notify = clients["registry"], clients["status"], clients["notify"]
    admin = bearer("admin")
    point = registry.post("/v1/points", json=POINT, headers=admin).json()
    path = f"/v1/points/{point['id']}/status"
    eventually(lambda: status.get(path).status_code == 200, "status learns the point")
    assert status.post(path, json={"state": "open"}, headers=admin).status_code == 201
    observed = {"point_id": point["id"]}
    eventually(
        lambda: notify.get("/v1/observations", params=observed, headers=admin).json()["items"], "notify sees it open"
    )
    e164 = new_number()
    accepted = notify.post("/v1/subscriptions", json={"phone": e164, "point_id": point["id"]})
    assert accepted.status_code == 202, accepted.text
    code = eventually(lambda: messages(urls, e164) and last_code(urls, e164), "the code is queued")
    assert notify.post("/v1/subscriptions/confirm", json={"phone": e164, "code": code}).status_code == 200

    trace_id = uuid.uuid4().hex
    caller = uuid.uuid4().hex[:16]
    traced = {**admin, "traceparent": f"00-{trace_id}-{caller}-01"}
    assert status.post(path, json={"state": "closed"}, headers=traced).status_code == 201
    eventually(
        lambda: any(m["kind"] == "alert" and m["state"] == "sent" for m in messages(urls, e164)), "the alert is sent"
    )
    eventually(lambda: any(s.name.startswith("apply ua.poi.status") for s in spans.get_finished_spans()), "search")

    story = [s for s in spans.get_finished_spans() if s.context.trace_id == int(trace_id, 16)]
    by_id = {s.context.span_id: s for s in story}
    (send,) = [s for s in story if s.name == "send sms alert"]
    names = [s.name for s in chain(send, by_id)]
    assert names[0] == "send sms alert"
    assert names[1] == "consume ua.poi.status.changed.v1", names
    assert names[2] == "publish ua.poi.status.changed.v1", names
    assert names[-1] == "POST /v1/points/{point_id}/status", names
    request = chain(send, by_id)[-1]
    assert request.kind == trace.SpanKind.SERVER and request.parent is not None
    assert request.parent.span_id == int(caller, 16), "the request's span is a child of the caller's"
    (applied,) = [s for s in story if s.name == "apply ua.poi.status.changed.v1"]
    assert [s.name for s in chain(applied, by_id)][1:] == names[2:], "search's update is a child of the publish"
