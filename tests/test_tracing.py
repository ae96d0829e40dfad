"""Optional OpenTelemetry tracing, recorded with the SDK's in-memory exporter: one trace from a web request
(continuing the caller's traceparent) through the RQ job it enqueued (the context in the job's meta), the
Kraty call the job made and the sink delivery that followed."""
from __future__ import annotations

import io
import json
import logging

import pytest
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from rq.job import Job

from config.settings import SettingsError, load_settings
from middleware import ops
from middleware.metrics import tracing
from middleware.logs import JsonFormatter
from workers.traced import TracedSimpleWorker

from tests.support.orders_flow import drain
from tests.support.ops_ledger import key
from tests.support.stripe_events import body_of, completed, sign
from tests.support.sink_receiver import CRM_SECRET
from tests.support.sink_receiver import server  # noqa: F401  (fixture: a sink receiver)

CALLER_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_SPAN = "00f067aa0ba902b7"


@pytest.fixture
def settings_overrides(settings_overrides, server, tmp_path):
    path = tmp_path / "sinks.toml"
    path.write_text(f'[sinks.crm]\nurl = "{server.url}/crm"\nsecret = "{CRM_SECRET}"\nevents = ["purchase.*"]\n'
                    'environments = ["sandbox", "production"]\n')
    return {**settings_overrides, "sinks_path": str(path)}


@pytest.fixture
def spans():
    exporter = InMemorySpanExporter()
    tracing.install(SimpleSpanProcessor(exporter))
    yield exporter
    tracing.uninstall()


def test_one_trace_from_the_request_through_the_job_kraty_and_the_sink(client, redis, emulator, stripe_fake,
                                                                       server, spans):
    session = stripe_fake.session(client_reference_id="player-traced",
                                  line_items=[{"price": "price_gems_100", "quantity": 1}])
    body = body_of(completed(session))
    response = client.post("/webhooks/stripe/demo", data=body, content_type="application/json",
                           headers={"traceparent": f"00-{CALLER_TRACE}-{CALLER_SPAN}-01",
                                    "Stripe-Signature": sign(body)})
    assert response.status_code == 200, response.get_data(as_text=True)
    drain(redis, worker_class=TracedSimpleWorker)
    assert server.count("/crm") >= 1

    finished = spans.get_finished_spans()
    by_name = {}
    for span in finished:
        by_name.setdefault(span.name, []).append(span)
    assert {f"{s.context.trace_id:032x}" for s in finished} == {CALLER_TRACE}  # one trace, the caller's

    request = by_name["POST /webhooks/stripe/<namespace>"][0]
    assert request.kind == SpanKind.SERVER and f"{request.parent.span_id:016x}" == CALLER_SPAN
    assert request.attributes["http.response.status_code"] == 200
    handle = by_name["job workers.events.stripe"][0]
    assert handle.kind == SpanKind.CONSUMER and handle.parent.span_id == request.context.span_id
    credit = by_name["kraty credit"][0]
    assert credit.kind == SpanKind.CLIENT and credit.parent.span_id == handle.context.span_id
    deliver = by_name["job workers.deliver.deliver"][0]
    assert deliver.parent.span_id == handle.context.span_id  # enqueued by the job, in its span
    sink_post = by_name["sink POST"][0]
    assert sink_post.parent.span_id == deliver.context.span_id
    assert sink_post.attributes["http.response.status_code"] == 200


def test_a_500_is_an_error_span_and_log_lines_carry_the_trace(app, services, monkeypatch, spans):
    app.config["TESTING"] = False
    monkeypatch.setattr(ops, "list_fulfilments", _broken)
    lines = io.StringIO()
    handler = logging.StreamHandler(lines)
    handler.setFormatter(JsonFormatter())
    logging.getLogger().addHandler(handler)
    try:
        assert app.test_client().get("/v1/fulfilments", headers=key(services, "viewer")).status_code == 500
    finally:
        logging.getLogger().removeHandler(handler)
    (span,) = [s for s in spans.get_finished_spans() if s.name == "GET /v1/fulfilments"]
    assert span.status.status_code == StatusCode.ERROR and span.attributes["http.response.status_code"] == 500
    logged = next(entry for entry in map(json.loads, lines.getvalue().splitlines()) if "exception" in entry)
    assert logged["trace_id"] == f"{span.context.trace_id:032x}" and logged["span_id"] == f"{span.context.span_id:016x}"


def _broken(*_args, **_kwargs):
    raise RuntimeError("a bug")


def test_off_by_default_nothing_is_traced_or_carried(redis, services):
    assert load_settings({}).otel_enabled is False
    assert not tracing.enabled()
    job_id = services.jobs.reconcile(1)
    assert "trace" not in Job.fetch(job_id, connection=redis).meta
    with tracing.span("anything") as span:
        assert span is None
    assert tracing.outgoing_headers({"a": "b"}) == {"a": "b"}


def test_enabled_exports_by_otlp_with_the_settings(monkeypatch):
    settings = load_settings({"KB_OTEL_ENABLED": "true", "KB_OTEL_ENDPOINT": "http://127.0.0.1:9/v1/traces",
                              "KB_OTEL_SERVICE_NAME": "bridge-eu", "KB_OTEL_SAMPLE_RATIO": "0.25"})
    tracing.configure(settings)
    try:
        provider = tracing._provider
        assert provider.resource.attributes["service.name"] == "bridge-eu"
        assert "0.25" in provider.sampler.get_description()
        (processor,) = provider._active_span_processor._span_processors
        assert isinstance(processor, BatchSpanProcessor)
        assert processor._batch_processor._exporter._endpoint == "http://127.0.0.1:9/v1/traces"
    finally:
        tracing.uninstall()
    for bad in ("1.5", "-0.1"):
        with pytest.raises(SettingsError, match="KB_OTEL_SAMPLE_RATIO"):
            load_settings({"KB_OTEL_SAMPLE_RATIO": bad})
    with pytest.raises(SettingsError, match="KB_OTEL_ENDPOINT"):
        load_settings({"KB_OTEL_ENDPOINT": "collector:4318"})
