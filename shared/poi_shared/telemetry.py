"""OpenTelemetry tracing and JSON logs carrying trace ids; configured by the app factory, never on import."""

import json
import logging
import os
import sys
from collections.abc import Sequence
from datetime import UTC, datetime

from fastapi import FastAPI
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter

_instrumented = False


class JsonFormatter(logging.Formatter):
    """One JSON object per line, with the current trace and span ids."""

    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "service": self.service,
            "logger": record.name,
            "message": record.getMessage(),
        }
        context = trace.get_current_span().get_span_context()
        if context.is_valid:
            entry["trace_id"] = format(context.trace_id, "032x")
            entry["span_id"] = format(context.span_id, "016x")
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def configure_logging(service: str, level: str) -> None:
    """Send every log record to stderr as JSON."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(service))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # uvicorn configures its own plain-text handlers before the app factory runs; route them through ours.
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers[:] = []
        logger.propagate = True


def configure_tracing(service: str, app: FastAPI, untraced: Sequence[str] = ()) -> None:
    """Trace requests (but /livez, /readyz and untraced paths), SQL, Redis and HTTP calls.

    Export only where OTEL_TRACES_EXPORTER says so.
    """
    global _instrumented
    if not _instrumented:
        _instrumented = True
        provider = TracerProvider(resource=Resource.create({"service.name": service}))
        for exporter in os.environ.get("OTEL_TRACES_EXPORTER", "none").split(","):
            if exporter.strip() == "otlp":
                from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

                provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
            elif exporter.strip() == "console":
                provider.add_span_processor(BatchSpanProcessor(ConsoleSpanExporter()))
        trace.set_tracer_provider(provider)
        from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor
        from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
        from opentelemetry.instrumentation.redis import RedisInstrumentor

        AsyncPGInstrumentor().instrument()
        RedisInstrumentor().instrument()
        HTTPXClientInstrumentor().instrument()
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

    # A request's span is enough: the ASGI receive and send spans under it double the cost of tracing a request
    # and tell nothing the request's span does not.
    FastAPIInstrumentor.instrument_app(
        app, excluded_urls=",".join(("livez", "readyz", *untraced)), exclude_spans=["receive", "send"]
    )
