"""Logs are one JSON object per line and carry the current trace and span ids."""

import json
import logging

from opentelemetry.sdk.trace import TracerProvider

from poi_shared.telemetry import JsonFormatter


def record(message: str) -> logging.LogRecord:
    return logging.LogRecord("poi.test", logging.WARNING, __file__, 1, message, None, None)


def test_log_line_is_json_with_trace_ids() -> None:
    formatter = JsonFormatter("poi-test")
    with TracerProvider().get_tracer("t").start_as_current_span("work") as span:
        line = formatter.format(record("пункт відкрито"))
        context = span.get_span_context()
    entry = json.loads(line)
    assert entry["service"] == "poi-test" and entry["level"] == "WARNING"
    assert entry["message"] == "пункт відкрито"
    assert entry["trace_id"] == format(context.trace_id, "032x")
    assert entry["span_id"] == format(context.span_id, "016x")


def test_log_line_outside_a_trace_has_no_ids() -> None:
    entry = json.loads(JsonFormatter("poi-test").format(record("idle")))
    assert "trace_id" not in entry
