"""Optional OpenTelemetry tracing (``KB_OTEL_ENABLED``, off by default): one trace from a web request through
the jobs it enqueues to the Kraty calls and sink deliveries they make (docs/observability.md).

- ``init_app``: a SERVER span per request, named ``METHOD <url rule>``, continuing an incoming W3C
  ``traceparent``.
- ``job_meta``: the current trace context as an RQ job's ``meta["trace"]``; the enqueue helpers
  (workers/queues.py) pass it, and ``job_span`` (the worker classes in workers/traced.py) continues it, so
  the job's span is a child of the request's.
- ``span``: a CLIENT span around a Kraty call (whose request carries ``traceparent``) or a sink POST.

Off, nothing is created: every helper returns at once. The exporter is OTLP over HTTP/protobuf to
``KB_OTEL_ENDPOINT`` (its headers, e.g. an API key, from ``OTEL_EXPORTER_OTLP_HEADERS`` as the SDK reads it),
batched; sampling is parent-based with ``KB_OTEL_SAMPLE_RATIO`` for new traces.
"""
from __future__ import annotations

import importlib
import json
from contextlib import contextmanager
from typing import TYPE_CHECKING

from flask import Flask, g, request
from opentelemetry import context, propagate, trace
from opentelemetry.trace import SpanKind, Status, StatusCode

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import SpanProcessor, TracerProvider

from middleware.metrics.http import route

TRACER = "kraty-bridge"
_provider: TracerProvider | None = None


def _sdk(name: str):
    """A module of the OpenTelemetry SDK or its OTLP exporter (with protobuf, about 4 MB per process): loaded
    only when tracing is turned on, so a process that does not trace never holds them (the API is enough)."""
    return importlib.import_module(name)


def install(processor: SpanProcessor, service_name: str = TRACER, sample_ratio: float = 1.0) -> TracerProvider:
    """Trace this process's work into ``processor`` (``configure`` with the OTLP exporter; tests in memory)."""
    global _provider
    uninstall()
    sdk, sampling = _sdk("opentelemetry.sdk.trace"), _sdk("opentelemetry.sdk.trace.sampling")
    resource = _sdk("opentelemetry.sdk.resources").Resource.create({"service.name": service_name})
    _provider = sdk.TracerProvider(resource=resource,
                                   sampler=sampling.ParentBased(sampling.TraceIdRatioBased(sample_ratio)))
    _provider.add_span_processor(processor)
    return _provider


def uninstall() -> None:
    global _provider
    if _provider is not None:
        _provider.shutdown()
        _provider = None


def configure(settings) -> None:
    """The app factory's call: with ``KB_OTEL_ENABLED``, export to ``KB_OTEL_ENDPOINT`` (once per process)."""
    if settings.otel_enabled and _provider is None:
        exporter = _sdk("opentelemetry.exporter.otlp.proto.http.trace_exporter").OTLPSpanExporter
        batch = _sdk("opentelemetry.sdk.trace.export").BatchSpanProcessor
        install(batch(exporter(endpoint=settings.otel_endpoint)), settings.otel_service_name,
                settings.otel_sample_ratio)


def enabled() -> bool:
    return _provider is not None


def flush() -> None:
    if _provider is not None:
        _provider.force_flush()


@contextmanager
def span(name: str, kind: SpanKind = SpanKind.INTERNAL, attributes: dict | None = None, parent=None):
    """A span around the block (None when tracing is off); an exception marks it as an error and goes on."""
    if _provider is None:
        yield None
        return
    with _provider.get_tracer(TRACER).start_as_current_span(name, context=parent, kind=kind,
                                                            attributes=attributes) as current:
        yield current


def outgoing_headers(headers: dict) -> dict:
    """``headers`` plus the current ``traceparent`` (the same dict when tracing is off)."""
    if _provider is None:
        return headers
    carried = dict(headers)
    propagate.inject(carried)
    return carried


def job_meta() -> dict | None:
    """An RQ job's ``meta`` carrying the current trace context, or None (off, or no span now)."""
    if _provider is None:
        return None
    carrier: dict = {}
    propagate.inject(carrier)
    return {"trace": carrier} if carrier else None


def job_trace() -> str | None:
    """``job_meta``'s trace context as JSON, for a job that is enqueued later (the outbox's rows), or None."""
    meta = job_meta()
    return json.dumps(meta["trace"]) if meta else None


@contextmanager
def job_span(job, queue_name: str):
    """The span of one RQ job, a child of the span that enqueued it when its ``meta`` carries one."""
    parent = propagate.extract((job.meta or {}).get("trace") or {}) if _provider is not None else None
    with span(f"job {job.func_name}", SpanKind.CONSUMER, {"messaging.system": "rq", "messaging.message.id": job.id,
                                                           "messaging.destination.name": queue_name},
              parent) as current:
        yield current


def _start_request_span():
    if _provider is None:
        return
    name = f"{request.method} {route()}"
    started = _provider.get_tracer(TRACER).start_span(
        name, context=propagate.extract(request.headers), kind=SpanKind.SERVER,
        attributes={"http.request.method": request.method, "http.route": route(), "url.path": request.path})
    g.kb_span = (started, context.attach(trace.set_span_in_context(started)))


def _note_status(response):
    if _provider is None:  # tracing off: no span (the common case, on every request)
        return response
    current = g.get("kb_span")
    if current is not None:
        current[0].set_attribute("http.response.status_code", response.status_code)
        if response.status_code >= 500:
            current[0].set_status(Status(StatusCode.ERROR))
    return response


def _end_request_span(exc):
    current = g.pop("kb_span", None)
    if current is None:
        return
    started, token = current
    if exc is not None:
        started.record_exception(exc)
        started.set_status(Status(StatusCode.ERROR, exc.__class__.__name__))
    started.end()
    context.detach(token)


def init_app(app: Flask) -> None:
    app.before_request(_start_request_span)
    app.after_request(_note_status)
    app.teardown_request(_end_request_span)
