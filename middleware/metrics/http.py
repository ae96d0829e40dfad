"""HTTP request metrics: ``kb_http_request_seconds{route, method, status}``, a histogram whose ``_count``
is the number of requests. ``route`` is Flask's URL rule (``/v1/fulfilments/<fulfilment_id>``), never the
raw path, so players' and orders' ids do not become label values; a path no rule matched is ``unmatched``.

Observed in ``after_request``, which Flask also runs for the 500 it makes of an unhandled exception, so
500s show; the time is from the first ``before_request`` hook to the response (not its streaming)."""
from __future__ import annotations

import time

from flask import Flask, g, request
from prometheus_client import Histogram

REQUEST_SECONDS = Histogram(
    "kb_http_request_seconds", "HTTP requests answered by the web app, by route (the URL rule), method and "
    "status, and their latency", ["route", "method", "status"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30))
UNMATCHED = "unmatched"


def route() -> str:
    rule = request.url_rule
    return rule.rule if rule is not None else UNMATCHED


def _start():
    g.kb_request_started = time.perf_counter()


_children: dict[tuple, object] = {}   # (rule, method, status) -> its histogram child: no labels() per request


def _observe(response):
    started = g.get("kb_request_started")
    if started is not None:
        key = (route(), request.method, response.status_code)
        child = _children.get(key)
        if child is None:  # rules x methods x statuses: a bounded set
            child = _children[key] = REQUEST_SECONDS.labels(key[0], key[1], str(key[2]))
        child.observe(time.perf_counter() - started)
    return response


def init_app(app: Flask) -> None:
    app.before_request_funcs.setdefault(None, []).insert(0, _start)  # before any other hook: time them too
    app.after_request(_observe)
