"""Logs are one JSON object per line and carry the current trace and span ids."""

import json
import logging

from opentelemetry.sdk.trace import TracerProvider

from poi_shared.telemetry import JsonFormatter, configure_logging


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


def test_an_access_log_uvicorn_turned_off_stays_off() -> None:
    """uvicorn --no-access-log leaves its access logger without handlers, not propagating; routing uvicorn's logs
    through ours must not turn it back on (uvicorn logs every request whenever that logger has a handler)."""
    root, access = logging.getLogger(), logging.getLogger("uvicorn.access")
    saved = (root.handlers[:], root.level, access.handlers[:], access.propagate)
    try:
        access.handlers[:], access.propagate = [], False
        configure_logging("poi-test", "INFO")
        assert not access.hasHandlers()
        access.handlers[:] = [logging.NullHandler()]  # uvicorn's own access handler: the access log is on
        configure_logging("poi-test", "INFO")
        assert access.propagate and not access.handlers and access.hasHandlers()
    finally:
        root.handlers[:], access.handlers[:] = saved[0], saved[2]
        root.setLevel(saved[1])
        access.propagate = saved[3]
