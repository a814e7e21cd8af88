"""OpenTelemetry tracing and JSON logs carrying trace ids; configured by the app factory, never on import."""

import json
import logging
import os
import sys
from collections.abc import Sequence
from datetime import UTC, datetime

from fastapi import FastAPI
from opentelemetry import context, propagate, trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ParentBased
from starlette.types import ASGIApp, Receive, Scope, Send

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
        # --no-access-log leaves the access logger without handlers and not propagating. uvicorn builds an access
        # record for every request whenever that logger has a handler up the chain, so it stays cut off.
        access_off = name == "uvicorn.access" and not logger.handlers and not logger.propagate
        logger.handlers[:] = []
        logger.propagate = not access_off


def current_traceparent() -> str | None:
    """The W3C traceparent of the current span, to store with work done later; None outside any trace."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier.get("traceparent")


def context_of(traceparent: str | None) -> context.Context | None:
    """The trace context a stored traceparent names (None for none), to start a span under it."""
    return propagate.extract({"traceparent": traceparent}) if traceparent else None


def exporters() -> list[str]:
    """The span exporters OTEL_TRACES_EXPORTER names (none when unset or `none`)."""
    names = (name.strip() for name in os.environ.get("OTEL_TRACES_EXPORTER", "none").split(","))
    return [name for name in names if name and name != "none"]


def configure_tracing(service: str, app: FastAPI, untraced: Sequence[str] = ()) -> None:
    """Trace requests (but /livez, /readyz and untraced paths), SQL, Redis and HTTP calls.

    Export only where OTEL_TRACES_EXPORTER says so. Without an exporter no span would be seen, so none is made
    that only costs: requests and calls are not instrumented and spans are started unsampled; a caller's trace
    context is still carried to logs, events and outgoing HTTP calls.
    """
    global _instrumented
    exporting = exporters()
    if not _instrumented:
        _instrumented = True
        # Unsampled spans still get ids and carry the context; they are neither recorded nor exported.
        sampler = None if exporting else ParentBased(ALWAYS_OFF)
        provider = TracerProvider(resource=Resource.create({"service.name": service}), sampler=sampler)
        for exporter in exporting:
            if exporter == "otlp":
                from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

                provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
            elif exporter == "console":
                provider.add_span_processor(BatchSpanProcessor(ConsoleSpanExporter()))
        trace.set_tracer_provider(provider)
        from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor

        HTTPXClientInstrumentor().instrument()  # also carries the trace context to the services called
        if exporting:
            from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor
            from opentelemetry.instrumentation.redis import RedisInstrumentor

            AsyncPGInstrumentor().instrument()
            RedisInstrumentor().instrument()
    if not exporting:
        app.add_middleware(TraceContext)
        return
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

    # A request's span is enough: the ASGI receive and send spans under it double the cost of tracing a request
    # and tell nothing the request's span does not.
    FastAPIInstrumentor.instrument_app(
        app, excluded_urls=",".join(("livez", "readyz", *untraced)), exclude_spans=["receive", "send"]
    )


class TraceContext:
    """ASGI middleware for when nothing is exported: the caller's trace context (W3C traceparent), if it sent one,
    is the request's context, so logs, events and calls made for the request carry its trace id."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # A span already current (an instrumentation outside this middleware made it) is the request's context.
        if (
            scope["type"] != "http"
            or not any(name == b"traceparent" for name, _ in scope["headers"])
            or trace.get_current_span().get_span_context().is_valid
        ):
            await self.app(scope, receive, send)
            return
        carrier = {name.decode("latin-1"): value.decode("latin-1") for name, value in scope["headers"]}
        token = context.attach(propagate.extract(carrier))
        try:
            await self.app(scope, receive, send)
        finally:
            context.detach(token)
