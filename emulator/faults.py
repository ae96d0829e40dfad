"""Run-time fault injection and request counting, as a WSGI middleware around the Flask app.

A rule (all fields optional except that one of ``status``/``latency_ms``/``drop`` is needed)::

    {"path": "/wallet/.*/credit",   # regex, re.search on the request path
     "method": "POST",
     "status": 503,                # answer this with a Kraty error body (429 adds Retry-After)
     "code": "...", "message": "...", "retry_after": 1,
     "error_rate": 1.0,            # probability the rule fires
     "latency_ms": 0,              # sleep
     "phase": "before",            # before: do not apply the operation; after: apply, then fault
     "count": null,                # fire at most N times, then the rule is spent
     "drop": false}                # close the connection without answering

Rules are checked in order; latency-only rules add up, and at most one answering rule (status or
drop) fires per request. Only ``/server/...`` requests are counted and subject to faults;
``/_emulator`` never is.
"""
from __future__ import annotations

import json
import random
import re
import socket
import threading
import time
from collections import Counter

from emulator.model import ApiError

STATUS_CODES = {400: "validation_failed", 401: "unauthenticated", 403: "forbidden",
                404: "not_found", 409: "conflict", 429: "rate_limited",
                500: "internal_error", 502: "bad_gateway", 503: "service_unavailable",
                504: "gateway_timeout"}
REASONS = {400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
           409: "Conflict", 429: "Too Many Requests", 500: "Internal Server Error",
           502: "Bad Gateway", 503: "Service Unavailable", 504: "Gateway Timeout"}


MAX_PATHS = 20000  # distinct byPath keys kept; later new paths count under "(other paths)"


class ConnectionDropped(ConnectionError):
    """Raised instead of dropping when the server gives no socket (e.g. Flask's test client)."""


def _bad(message: str, field: str) -> ApiError:
    return ApiError(400, "validation_failed", message, {field: message})


def parse_rule(raw) -> dict:
    if not isinstance(raw, dict):
        raise _bad("each rule must be an object", "rules")
    rule = {"path": raw.get("path"), "method": raw.get("method"), "status": raw.get("status"),
            "code": raw.get("code"), "message": raw.get("message"),
            "retry_after": raw.get("retry_after", 1), "error_rate": raw.get("error_rate", 1.0),
            "latency_ms": raw.get("latency_ms", 0), "phase": raw.get("phase", "before"),
            "count": raw.get("count"), "drop": raw.get("drop", False)}
    unknown = set(raw) - set(rule)
    if unknown:
        raise _bad(f"unknown rule fields: {sorted(unknown)}", "rules")
    if rule["path"] is not None:
        try:
            rule["regex"] = re.compile(rule["path"])
        except (re.error, TypeError):
            raise _bad("path must be a valid regex", "path")
    if rule["method"] is not None:
        rule["method"] = str(rule["method"]).upper()
    if rule["status"] is not None and (type(rule["status"]) is not int
                                       or not 100 <= rule["status"] <= 599):
        raise _bad("status must be an HTTP status int", "status")
    if not isinstance(rule["error_rate"], (int, float)) or not 0 <= rule["error_rate"] <= 1:
        raise _bad("error_rate must be within 0..1", "error_rate")
    if not isinstance(rule["latency_ms"], (int, float)) or rule["latency_ms"] < 0:
        raise _bad("latency_ms must be >= 0", "latency_ms")
    if rule["phase"] not in ("before", "after"):
        raise _bad("phase must be 'before' or 'after'", "phase")
    if rule["count"] is not None and (type(rule["count"]) is not int or rule["count"] < 1):
        raise _bad("count must be a positive int", "count")
    if not isinstance(rule["drop"], bool):
        raise _bad("drop must be a bool", "drop")
    if rule["status"] is None and not rule["latency_ms"] and not rule["drop"]:
        raise _bad("a rule needs status, latency_ms or drop", "rules")
    rule["fired"] = 0
    return rule


class Faults:
    def __init__(self):
        self.lock = threading.Lock()
        self.rules: list[dict] = []

    def replace(self, raw_rules) -> list[dict]:
        if isinstance(raw_rules, dict):
            raw_rules = raw_rules.get("rules")
        if not isinstance(raw_rules, list):
            raise _bad("body must be a list of rules or {\"rules\": [...]}", "rules")
        rules = [parse_rule(r) for r in raw_rules]
        with self.lock:
            self.rules = rules
        return self.describe()

    def clear(self) -> None:
        with self.lock:
            self.rules = []

    def describe(self) -> list[dict]:
        with self.lock:
            return [{**{k: v for k, v in r.items() if k != "regex"},
                     "remaining": None if r["count"] is None else r["count"] - r["fired"]}
                    for r in self.rules]

    def pick(self, method: str, path: str) -> list[dict]:
        """The rules that fire for this request, in order (their counts are consumed).

        Latency-only rules add up; at most one answering rule (status or drop) fires: the first
        that matches and passes its error_rate. If it answers before the operation, rules of
        phase ``after`` do not fire (the operation never runs).
        """
        fired, answer = [], None
        with self.lock:
            for r in self.rules:
                if r["method"] and r["method"] != method:
                    continue
                if r["path"] is not None and not r["regex"].search(path):
                    continue
                if r["count"] is not None and r["fired"] >= r["count"]:
                    continue
                answering = r["drop"] or r["status"] is not None
                if answering and answer is not None:
                    continue
                if r["error_rate"] < 1 and random.random() >= r["error_rate"]:
                    continue
                if answering:
                    answer = r
                fired.append(r)
            if answer is not None and answer["phase"] == "before":
                fired = [r for r in fired if r["phase"] == "before"]
            for r in fired:
                r["fired"] += 1
        return fired


class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with self.lock:
            self.total = self.handled = self.faulted = self.dropped = 0
            self.by_path, self.by_route, self.by_status = Counter(), Counter(), Counter()

    def snapshot(self) -> dict:
        with self.lock:
            return {"total": self.total, "handled": self.handled,
                    "faults": {"fired": self.faulted, "dropped": self.dropped},
                    "byPath": dict(self.by_path), "byRoute": dict(self.by_route),
                    "byStatus": {str(k): v for k, v in self.by_status.items()}}


class FaultMiddleware:
    def __init__(self, app, faults: Faults, stats: Stats):
        self.app, self.faults, self.stats = app, faults, stats

    def __call__(self, environ, start_response):
        path = environ.get("PATH_INFO", "")
        if not path.startswith("/server/"):
            return self.app(environ, start_response)
        method = environ.get("REQUEST_METHOD", "GET")
        stats = self.stats
        with stats.lock:
            stats.total += 1
            key = f"{method} {path}"
            if key in stats.by_path or len(stats.by_path) < MAX_PATHS:
                stats.by_path[key] += 1
            else:
                stats.by_path["(other paths)"] += 1
        fired = self.faults.pick(method, path) if self.faults.rules else ()
        if fired:
            with stats.lock:
                stats.faulted += 1
            return self._faulted(fired, environ, start_response)

        def counting_start_response(status, headers, exc_info=None):
            with stats.lock:
                stats.by_status[int(status[:3])] += 1
            return start_response(status, headers, exc_info)
        return self.app(environ, counting_start_response)

    def _faulted(self, fired, environ, start_response):
        before = [r for r in fired if r["phase"] == "before"]
        after = [r for r in fired if r["phase"] == "after"]
        outcome = self._settle(before)
        if outcome is None:
            captured = {}

            def capture(status, headers, exc_info=None):
                captured["status"], captured["headers"] = status, headers
                return lambda data: None
            result = self.app(environ, capture)
            try:
                body = b"".join(result)
            finally:
                if hasattr(result, "close"):
                    result.close()
            outcome = self._settle(after)
            if outcome is None:
                return self._answer(start_response, captured["status"], captured["headers"], body)
        if outcome.get("drop"):
            return self._drop(environ, start_response)
        return self._error(start_response, outcome)

    @staticmethod
    def _settle(rules) -> dict | None:
        """Sleep the rules' latency; return the first rule that answers (status or drop)."""
        delay = sum(r["latency_ms"] for r in rules)
        if delay:
            time.sleep(delay / 1000.0)
        return next((r for r in rules if r["drop"] or r["status"] is not None), None)

    def _answer(self, start_response, status, headers, body):
        with self.stats.lock:
            self.stats.by_status[int(status[:3])] += 1
        start_response(status, headers)
        return [body]

    def _error(self, start_response, rule):
        status = rule["status"]
        code = rule["code"] or STATUS_CODES.get(status, "injected_fault")
        body = json.dumps({"error": {"code": code, "message": rule["message"] or
                                     f"injected fault ({status})",
                                     "details": {"injected": True}}}).encode()
        headers = [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
        if status == 429:
            headers.append(("Retry-After", str(rule["retry_after"])))
        return self._answer(start_response, f"{status} {REASONS.get(status, 'Fault')}",
                            headers, body)

    def _drop(self, environ, start_response):
        with self.stats.lock:
            self.stats.dropped += 1
        return drop_connection(environ, start_response, "emulator")


def drop_connection(environ, start_response, who: str):
    """Close the client's socket without answering (a fault rule's ``drop``)."""
    sock = environ.get("werkzeug.socket") or environ.get("gunicorn.socket")
    if sock is None:
        raise ConnectionDropped(f"{who} dropped the connection (fault rule)")
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    # The server's attempt to write these headers fails on the closed socket (EPIPE), which
    # both werkzeug and gunicorn treat as a client disconnect.
    start_response("500 Dropped", [("Content-Length", "0"), ("Connection", "close")])
    return []
