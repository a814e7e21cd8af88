"""The CloudEvents envelope round-trips and rejects what no retry can fix."""

import uuid
from datetime import UTC, datetime

import pytest

from poi_shared.contracts import POINT_REGISTERED, STATUS_CHANGED, OpenState, StatusState
from poi_shared.envelope import PoisonMessage, build_message, parse_message


def status() -> StatusState:
    return StatusState(
        point_id=uuid.uuid4(), version=3, state=OpenState.open, reported_at=datetime.now(UTC), reported_by="op-7"
    )


def test_round_trip_keeps_id_type_and_data() -> None:
    data = status()
    message = build_message(namespace="poi", event_type=STATUS_CHANGED, key=str(data.point_id), data=data, source="/t")
    assert message.subject == f"poi.status.{data.point_id}"
    assert message.headers["Nats-Msg-Id"] == message.headers["ce-id"] == message.event_id
    assert message.headers["ce-specversion"] == "1.0"
    assert message.headers["ce-datacontenttype"] == "application/json"
    event = parse_message(message.headers, message.body)
    assert (event.id, event.type, event.source, event.subject) == (
        message.event_id,
        "ua.poi.status.changed.v1",
        "/t",
        str(data.point_id),
    )
    assert event.data == data


def test_event_ids_are_unique() -> None:
    data = status()
    ids = {
        build_message(namespace="poi", event_type=STATUS_CHANGED, key="k", data=data, source="/t").event_id
        for _ in range(100)
    }
    assert len(ids) == 100


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"ce-type": "ua.poi.unknown.v1"}, "unknown ce-type"),
        ({"ce-specversion": "0.3"}, "unsupported ce-specversion"),
        ({"ce-id": ""}, "missing CloudEvents headers: ce-id"),
        ({"ce-time": "yesterday"}, "invalid"),
    ],
)
def test_malformed_headers_are_poison(change: dict[str, str], reason: str) -> None:
    data = status()
    message = build_message(namespace="poi", event_type=STATUS_CHANGED, key="k", data=data, source="/t")
    with pytest.raises(PoisonMessage, match=reason):
        parse_message({**message.headers, **change}, message.body)


def test_body_not_matching_the_type_is_poison() -> None:
    data = status()
    message = build_message(namespace="poi", event_type=STATUS_CHANGED, key="k", data=data, source="/t")
    headers = {**message.headers, "ce-type": POINT_REGISTERED.type}
    with pytest.raises(PoisonMessage, match=r"invalid ua\.poi\.point\.registered\.v1"):
        parse_message(headers, message.body)


def test_trace_context_travels_in_headers() -> None:
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider

    tracer = TracerProvider().get_tracer("test")
    with tracer.start_as_current_span("report") as span:
        message = build_message(namespace="poi", event_type=STATUS_CHANGED, key="k", data=status(), source="/t")
        trace_id = format(span.get_span_context().trace_id, "032x")
    assert trace_id in message.headers["traceparent"]
    assert trace.get_current_span().get_span_context().is_valid is False
