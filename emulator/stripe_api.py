"""A local fake of the few Stripe API calls kraty-bridge makes, in Stripe's wire format, and the
``/_stripe`` admin API that tests and local runs use to create objects and inject faults.

``create_stripe_app(config)`` builds a fresh, independent fake (no state or I/O at import), its
state in memory behind one lock. ``mount_stripe(app)`` serves one under ``/stripe`` in front of
another Flask app (``python -m emulator`` does that). The served calls (GET only):

    /v1/checkout/sessions/{id}             expand: line_items (first 10), payment_intent
    /v1/checkout/sessions/{id}/line_items  limit (1..100, default 10), starting_after|ending_before
    /v1/checkout/sessions                  payment_intent, customer, status, pagination, expand
                                           data.line_items, data.payment_intent
    /v1/payment_intents/{id}

Keys: ``Authorization: Bearer <key>``: any ``sk_test_``, ``sk_live_`` or ``rk_`` key, or only
``config["api_keys"]`` when given. A key with ``_test_``/``_live_`` in it sees only its mode's
objects (as on Stripe, the other mode's object is a 404); other configured keys see both.
"""
from __future__ import annotations

import json
import re
import threading
import time
from collections import deque
from urllib.parse import parse_qsl

from flask import Flask, Response, g, request
from werkzeug.exceptions import HTTPException
from werkzeug.middleware.dispatcher import DispatcherMiddleware

from .faults import Faults, drop_connection
from .model import ApiError
from .stripe_store import StripeError, StripeStore, list_object, new_id

DEFAULT_KEY_PREFIXES = ("sk_test_", "sk_live_", "rk_")
LOOPBACK = ("127.", "::1", "::ffff:127.")
EXPAND_KEY = re.compile(r"expand\[\d*\]")
PAGE_PARAMS = ("limit", "starting_after", "ending_before")
SESSION_FILTERS = ("payment_intent", "customer", "status")
FAULT_TYPES = {402: ("card_error", "card_declined"),
               404: ("invalid_request_error", "resource_missing"),
               429: ("invalid_request_error", "rate_limit")}


class StripeFake:
    """Everything one fake holds; ``app.extensions["stripe_fake"]``."""

    def __init__(self, config: dict):
        keys = config.get("api_keys")
        if keys is not None and not (isinstance(keys, list)
                                     and all(isinstance(k, str) and k for k in keys)):
            raise ValueError("api_keys must be a list of non-empty strings")
        self.api_keys = None if keys is None else frozenset(keys)
        self.store = StripeStore()
        self.faults = Faults()
        self.log_lock = threading.Lock()
        self.log: deque[dict] = deque(maxlen=int(config.get("request_log_size", 10000)))

    def key_mode(self, header: str) -> str | None:
        """The key's mode ("test", "live", or None: both), or Stripe's 401."""
        if not header:
            raise StripeError(401, "You did not provide an API key. You need to provide your API "
                              "key in the Authorization header, using Bearer auth (e.g. "
                              "'Authorization: Bearer YOUR_SECRET_KEY').")
        scheme, _, key = header.partition(" ")
        key = key.strip()
        known = (key in self.api_keys if self.api_keys is not None
                 else key.startswith(DEFAULT_KEY_PREFIXES))
        if scheme.lower() != "bearer" or not known:
            shown = f"{key[:8]}{'*' * (len(key) - 12)}{key[-4:]}" if len(key) > 12 else "****"
            raise StripeError(401, f"Invalid API Key provided: {shown}")
        return "live" if "_live_" in key else "test" if "_test_" in key else None

    def record(self, method: str, path: str, query: str) -> dict:
        values: dict[str, list[str]] = {}
        for key, value in parse_qsl(query, keep_blank_values=True):
            values.setdefault(key, []).append(value)
        entry = {"method": method, "path": path, "status": None,
                 "query": {k: v[0] if len(v) == 1 else v for k, v in values.items()}}
        with self.log_lock:
            self.log.append(entry)
        return entry

    def requests(self) -> list[dict]:
        with self.log_lock:
            return [dict(e) for e in self.log]

    def reset(self) -> None:
        self.store.reset()
        self.faults.clear()
        with self.log_lock:
            self.log.clear()


def _json(status: int, body: dict, headers: dict | None = None) -> Response:
    response = Response(json.dumps(body), status, mimetype="application/json")
    response.headers.update(headers or {})
    return response


class ApiMiddleware:
    """Logs every ``/v1/`` call and applies the fault rules (rule format: emulator/faults.py;
    ``phase`` makes no difference here, the API only reads)."""

    def __init__(self, app, fake: StripeFake):
        self.app, self.fake = app, fake

    def __call__(self, environ, start_response):
        path = environ.get("PATH_INFO", "")
        if not path.startswith("/v1/"):
            return self.app(environ, start_response)
        method = environ.get("REQUEST_METHOD", "GET")
        entry = self.fake.record(method, path, environ.get("QUERY_STRING", ""))

        def logging_start_response(status, headers, exc_info=None):
            entry["status"] = int(status[:3])
            return start_response(status, headers, exc_info)
        fired = self.fake.faults.pick(method, path) if self.fake.faults.rules else ()
        delay = sum(r["latency_ms"] for r in fired)
        if delay:
            time.sleep(delay / 1000.0)
        rule = next((r for r in fired if r["drop"] or r["status"] is not None), None)
        if rule is None:
            return self.app(environ, logging_start_response)
        if rule["drop"]:
            entry["status"] = "dropped"
            return self._drop(environ, start_response)
        return self._fault_response(rule)(environ, logging_start_response)

    @staticmethod
    def _fault_response(rule) -> Response:
        status = rule["status"]
        type_, code = FAULT_TYPES.get(
            status, ("api_error" if status >= 500 else "invalid_request_error", None))
        err = StripeError(status, rule["message"] or f"Injected fault ({status}).", type_,
                          rule["code"] or code)
        headers = {"Request-Id": new_id("req", 14)}
        if status == 429:
            headers["Retry-After"] = str(rule["retry_after"])
        return _json(status, err.body(), headers)

    @staticmethod
    def _drop(environ, start_response):
        return drop_connection(environ, start_response, "stripe fake")


def read_params(allowed: tuple = (), expandable: tuple = ()) -> tuple[dict, list[str]]:
    """The query's parameters (an empty value counts as absent) and ``expand[N]`` names."""
    params, expand = {}, []
    for key in request.args:
        values = request.args.getlist(key)
        if key == "expand" or EXPAND_KEY.fullmatch(key):
            expand += values
        elif key in allowed:
            params[key] = values[-1] or None
        else:
            raise StripeError(400, f"Received unknown parameter: {key}",
                              code="parameter_unknown", param=key)
    for name in expand:
        if name not in expandable:
            raise StripeError(400, f"This property cannot be expanded ({name}).", param="expand")
    return params, expand


def create_stripe_app(config: dict | None = None) -> Flask:
    fake = StripeFake(config or {})
    app = Flask("stripe_fake")
    app.json.sort_keys = False
    app.extensions["stripe_fake"] = fake
    app.wsgi_app = ApiMiddleware(app.wsgi_app, fake)

    @app.errorhandler(StripeError)
    def stripe_error(err: StripeError):
        return _json(err.status, err.body(), err.headers)

    @app.errorhandler(HTTPException)
    def http_error(err: HTTPException):
        if err.code in (404, 405):
            err = StripeError(404, f"Unrecognized request URL ({request.method}: {request.path}). "
                              "The Stripe fake serves only a few calls: emulator/stripe_api.py.")
        else:
            err = StripeError(err.code or 500, err.description or "HTTP error")
        return _json(err.status, err.body())

    @app.errorhandler(Exception)
    def unexpected(err: Exception):
        app.logger.exception("stripe fake error")
        err = StripeError(500, "Internal error in the Stripe fake.", "api_error")
        return _json(500, err.body())

    @app.before_request
    def guard():
        if request.path.startswith("/_stripe"):
            addr = request.remote_addr or "127.0.0.1"
            if not addr.startswith(LOOPBACK) and addr != "localhost":
                raise StripeError(403, "the Stripe fake's admin API is loopback only")
        elif request.path.startswith("/v1/"):
            g.mode = fake.key_mode(request.headers.get("Authorization", ""))

    @app.after_request
    def request_id(response: Response):
        if request.path.startswith("/v1/"):
            response.headers.setdefault("Request-Id", new_id("req", 14))
        return response

    register_api(app, fake.store)
    register_admin(app, fake)
    return app


def register_api(app: Flask, store: StripeStore) -> None:
    def items_url(session_id: str) -> str:
        return f"/v1/checkout/sessions/{session_id}/line_items"

    def render_session(session: dict, expand: list[str], prefix: str = "") -> dict:
        out = dict(session)
        if f"{prefix}payment_intent" in expand and out["payment_intent"]:
            out["payment_intent"] = store.intent(out["payment_intent"], None)
        if f"{prefix}line_items" in expand:
            out["line_items"] = list_object(store.line_items(session["id"], None),
                                            items_url(session["id"]), {}, "line item")
        return out

    @app.get("/v1/checkout/sessions/<session_id>")
    def retrieve_session(session_id):
        _, expand = read_params(expandable=("line_items", "payment_intent"))
        return render_session(store.session(session_id, g.mode), expand)

    @app.get("/v1/checkout/sessions/<session_id>/line_items")
    def list_line_items(session_id):
        params, _ = read_params(PAGE_PARAMS)
        return list_object(store.line_items(session_id, g.mode), items_url(session_id), params,
                           "line item")

    @app.get("/v1/checkout/sessions")
    def list_sessions():
        params, expand = read_params(PAGE_PARAMS + SESSION_FILTERS,
                                     ("data.line_items", "data.payment_intent"))
        sessions = store.list_sessions(g.mode, {k: params.get(k) for k in SESSION_FILTERS})
        listed = list_object(sessions, "/v1/checkout/sessions", params, "checkout.session")
        listed["data"] = [render_session(s, expand, "data.") for s in listed["data"]]
        return listed

    @app.get("/v1/payment_intents/<intent_id>")
    def retrieve_intent(intent_id):
        read_params()
        return store.intent(intent_id, g.mode)


def register_admin(app: Flask, fake: StripeFake) -> None:
    store = fake.store

    def body():
        data = request.get_json(silent=True)
        if data is None:
            raise StripeError(400, "the body must be JSON")
        return data

    def with_items(session: dict, items: list[dict]) -> dict:
        """Admin answers carry ALL the line items (the API's expand gives the first 10)."""
        url = f"/v1/checkout/sessions/{session['id']}/line_items"
        return {**session,
                "line_items": {"object": "list", "data": items, "has_more": False, "url": url}}

    @app.post("/_stripe/checkout_sessions")
    def admin_create_session():
        return with_items(*store.create_session(body()))

    @app.patch("/_stripe/checkout_sessions/<session_id>")
    def admin_update_session(session_id):
        session = store.update_session(session_id, body())
        return with_items(session, store.line_items(session_id, None))

    @app.post("/_stripe/payment_intents")
    def admin_create_intent():
        return store.create_intent(body())

    @app.route("/_stripe/faults", methods=["GET", "PUT", "POST", "DELETE"])
    def faults():
        if request.method == "DELETE":
            fake.faults.clear()
        elif request.method != "GET":
            try:
                fake.faults.replace(request.get_json(silent=True))
            except ApiError as err:
                raise StripeError(400, err.message, param=next(iter(err.details), None))
        return {"rules": fake.faults.describe()}

    @app.get("/_stripe/requests")
    def requests_log():
        entries = fake.requests()
        return {"requests": entries, "count": len(entries)}

    @app.post("/_stripe/reset")
    def reset():
        fake.reset()
        return {"reset": True}


def mount_stripe(app: Flask, prefix: str = "/stripe", config: dict | None = None) -> Flask:
    """Serve a new fake under ``prefix`` in front of ``app``; other paths reach it unchanged."""
    stripe_app = create_stripe_app(config)
    app.wsgi_app = DispatcherMiddleware(app.wsgi_app, {prefix: stripe_app})
    return stripe_app
