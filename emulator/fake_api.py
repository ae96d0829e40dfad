"""What the store fakes (stripe_api.py, google_play_api.py) share: their state's common part (fault
rules and the request log), JSON answers, the WSGI middleware that logs API calls and applies the
fault rules, the loopback check of the admin API, its ``faults``/``requests``/``reset`` routes and
mounting a fake under a prefix in front of another app. Each fake keeps its own error shapes and
decides which of its paths are API calls.
"""
from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Callable
from urllib.parse import parse_qsl

from flask import Flask, Response, request
from werkzeug.middleware.dispatcher import DispatcherMiddleware

from emulator.faults import Faults, drop_connection
from emulator.model import ApiError

LOOPBACK = ("127.", "::1", "::ffff:127.")


class RequestLog:
    """The last ``size`` API calls: ``{method, path, status, query}``; ``status`` is filled in when
    the answer starts (``"dropped"`` for a dropped connection)."""

    def __init__(self, size: int = 10000):
        self.lock = threading.Lock()
        self.log: deque[dict] = deque(maxlen=int(size))

    def record(self, method: str, path: str, query: str) -> dict:
        values: dict[str, list[str]] = {}
        for key, value in parse_qsl(query, keep_blank_values=True):
            values.setdefault(key, []).append(value)
        entry = {"method": method, "path": path, "status": None,
                 "query": {k: v[0] if len(v) == 1 else v for k, v in values.items()}}
        with self.lock:
            self.log.append(entry)
        return entry

    def entries(self) -> list[dict]:
        with self.lock:
            return [dict(e) for e in self.log]

    def clear(self) -> None:
        with self.lock:
            self.log.clear()


class FakeState:
    """The fault rules and request log of one fake (config: ``request_log_size``, default 10000);
    a fake's own state class adds its store and resets it before calling ``reset`` here."""

    def __init__(self, config: dict):
        self.faults = Faults()
        self.log = RequestLog(config.get("request_log_size", 10000))

    def requests(self) -> list[dict]:
        return self.log.entries()

    def reset(self) -> None:
        self.faults.clear()
        self.log.clear()


def json_response(status: int, body: dict, headers: dict | None = None) -> Response:
    response = Response(json.dumps(body), status, mimetype="application/json")
    response.headers.update(headers or {})
    return response


class FaultingMiddleware:
    """Logs every API call (the paths ``counts(path)`` accepts) and applies the fault rules to them
    (rule format: emulator/faults.py; ``phase: after`` runs the call, then answers the fault). An answering rule's
    status is shaped by ``fault_response(rule, path, message)``; a 429 gets ``Retry-After``."""

    def __init__(self, app, state: FakeState, who: str, counts: Callable[[str], bool],
                 fault_response: Callable[[dict, str, str], Response]):
        self.app, self.state, self.who = app, state, who
        self.counts, self.fault_response = counts, fault_response

    def __call__(self, environ, start_response):
        path = environ.get("PATH_INFO", "")
        if not self.counts(path):
            return self.app(environ, start_response)
        method = environ.get("REQUEST_METHOD", "GET")
        entry = self.state.log.record(method, path, environ.get("QUERY_STRING", ""))

        def logging_start_response(status, headers, exc_info=None):
            entry["status"] = int(status[:3])
            return start_response(status, headers, exc_info)
        faults = self.state.faults
        fired = faults.pick(method, path) if faults.rules else ()
        delay = sum(r["latency_ms"] for r in fired)
        if delay:
            time.sleep(delay / 1000.0)
        rule = next((r for r in fired if r["drop"] or r["status"] is not None), None)
        if rule is None:
            return self.app(environ, logging_start_response)
        if rule["phase"] == "after":  # the operation is done, then its answer is lost
            _run_and_discard(self.app, environ)
        if rule["drop"]:
            entry["status"] = "dropped"
            return drop_connection(environ, start_response, self.who)
        status = rule["status"]
        response = self.fault_response(rule, path,
                                       rule["message"] or f"Injected fault ({status}).")
        if status == 429:
            response.headers["Retry-After"] = str(rule["retry_after"])
        return response(environ, logging_start_response)


def _run_and_discard(app, environ) -> None:
    body = app(environ, lambda status, headers, exc_info=None: (lambda data: None))
    try:
        for _ in body:
            pass
    finally:
        if hasattr(body, "close"):
            body.close()


def new_fake_app(name: str, state: FakeState, who: str, counts: Callable[[str], bool],
                 fault_response: Callable[[dict, str, str], Response]) -> Flask:
    """A Flask app for one fake: ``state`` in ``app.extensions[name]``, JSON keys left in their
    order, and the :class:`FaultingMiddleware` in front (its arguments as there)."""
    app = Flask(name)
    app.json.sort_keys = False
    app.extensions[name] = state
    app.wsgi_app = FaultingMiddleware(app.wsgi_app, state, who, counts, fault_response)
    return app


def from_loopback() -> bool:
    """Whether the current request comes from this machine (the admin APIs answer only those)."""
    addr = request.remote_addr or "127.0.0.1"
    return addr.startswith(LOOPBACK) or addr == "localhost"


def json_body(invalid: Callable[[str], Exception]) -> dict:
    """The request's JSON body, or ``invalid(message)`` raised."""
    data = request.get_json(silent=True)
    if data is None:
        raise invalid("the body must be JSON")
    return data


def register_common_admin(app: Flask, prefix: str, state: FakeState,
                          invalid_rules: Callable[[ApiError], Exception]) -> None:
    """``{prefix}/faults`` (GET; PUT/POST replace the rules; DELETE clears them),
    ``{prefix}/requests`` (the log) and ``{prefix}/reset`` (``state.reset()``)."""

    @app.route(f"{prefix}/faults", methods=["GET", "PUT", "POST", "DELETE"])
    def faults():
        if request.method == "DELETE":
            state.faults.clear()
        elif request.method != "GET":
            try:
                state.faults.replace(request.get_json(silent=True))
            except ApiError as err:
                raise invalid_rules(err)
        return {"rules": state.faults.describe()}

    @app.get(f"{prefix}/requests")
    def requests_log():
        entries = state.requests()
        return {"requests": entries, "count": len(entries)}

    @app.post(f"{prefix}/reset")
    def reset():
        state.reset()
        return {"reset": True}


def mount(app: Flask, prefix: str, fake_app: Flask) -> Flask:
    """Serve ``fake_app`` under ``prefix`` in front of ``app``; other paths reach ``app``
    unchanged."""
    app.wsgi_app = DispatcherMiddleware(app.wsgi_app, {prefix: fake_app})
    return fake_app
