"""JSON log lines with the request id, and the request id on every response."""
from __future__ import annotations

import json
import logging
import re
import secrets
import sys
import time

from flask import Flask, g, has_request_context, request
from opentelemetry import trace
from rq import get_current_job

REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{8,128}$")


class RequestIdFilter(logging.Filter):
    """The request id on a web log line; inside an RQ job, the job's id (``fulfil-<order>-<attempt>``)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if has_request_context():
            record.request_id = g.get("request_id")
        else:
            job = get_current_job()
            record.request_id = job.id if job is not None else None
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (UTC), level, logger, message, request_id, then a record's own
    ``fields`` (gunicorn's access lines), trace_id and span_id inside a traced span, and exception
    (docs/observability.md)."""
    converter = time.gmtime

    def format(self, record: logging.LogRecord) -> str:
        entry = {"time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}Z",
                 "level": record.levelname, "logger": record.name, "message": record.getMessage(),
                 "request_id": getattr(record, "request_id", None)}
        entry.update(getattr(record, "fields", None) or {})
        current = trace.get_current_span().get_span_context()
        if current.is_valid:  # tracing on (KB_OTEL_ENABLED): the line's trace and span
            entry["trace_id"], entry["span_id"] = f"{current.trace_id:032x}", f"{current.span_id:016x}"
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry)


def configure_logging(level: str, as_json: bool) -> None:
    """Install one handler on the root logger (idempotent: a second app reuses it)."""
    root = logging.getLogger()
    root.setLevel(level)
    handler = next((h for h in root.handlers if getattr(h, "_kraty_bridge", False)), None)
    if handler is None:
        handler = logging.StreamHandler(sys.stderr)
        handler._kraty_bridge = True
        handler.addFilter(RequestIdFilter())
        root.addHandler(handler)
    handler.setFormatter(JsonFormatter() if as_json else logging.Formatter(
        "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"))
    logging.Formatter.converter = time.gmtime


def register_request_ids(app: Flask) -> None:
    # on every request: the header read from the environ (no Headers view built), a new id from ``secrets``
    # (32 hex digits, as a uuid4's): a few microseconds of every webhook's CPU
    @app.before_request
    def _assign_request_id():
        incoming = request.environ.get("HTTP_X_REQUEST_ID", "")
        g.request_id = incoming if REQUEST_ID.match(incoming) else secrets.token_hex(16)

    @app.after_request
    def _echo_request_id(response):
        response.headers["X-Request-Id"] = g.get("request_id") or secrets.token_hex(16)
        return response
