"""A local fake of the Google Play calls kraty-bridge makes: the OAuth token endpoint google-auth's
service-account flow posts to, and the Android Publisher API v3 purchase calls, in Google's wire
format; plus the ``/_google`` admin API that tests and local runs use to register service accounts,
create purchases, void them and inject faults.

``create_google_app(config)`` builds a fresh, independent fake (no state or I/O at import), its
state in memory behind locks. ``mount_google(app)`` serves one under ``/google`` in front of
another Flask app (``python -m emulator`` does that). Served:

    POST /token                        JWT-bearer grant (google_play_auth.py) -> Bearer token
    /androidpublisher/v3/applications/{packageName}/purchases/...   (Bearer token required)
      GET  productsv2/tokens/{token}                         ProductPurchaseV2
      GET  products/{productId}/tokens/{token}               ProductPurchase (v1)
      POST products/{productId}/tokens/{token}:consume       -> {}
      POST products/{productId}/tokens/{token}:acknowledge   -> {}
      GET  subscriptionsv2/tokens/{token}                    SubscriptionPurchaseV2
      POST subscriptions/{subscriptionId}/tokens/{token}:acknowledge  -> {}
      GET  voidedpurchases   startTime, endTime, maxResults, token, type,
                             includeQuantityBasedPartialRefund

Config: ``token_lifetime`` (seconds, default 3600), ``request_log_size`` (default 10000).
"""
from __future__ import annotations

import json
import threading
import time
from collections import deque
from urllib.parse import parse_qsl

from flask import Flask, Response, request
from werkzeug.exceptions import HTTPException
from werkzeug.middleware.dispatcher import DispatcherMiddleware

from .faults import Faults, drop_connection
from .google_play_auth import Accounts, OAuthError
from .google_play_store import PlayStore
from .google_play_wire import (DAY_MS, GoogleError, bad, decode_page_token, encode_page_token,
                               now_ms, render_product_v1, render_product_v2,
                               render_subscription_v2)
from .model import ApiError

LOOPBACK = ("127.", "::1", "::ffff:127.")
API = "/androidpublisher/v3/applications/<package>/purchases"
STANDARD_PARAMS = {"alt", "fields", "prettyPrint", "quotaUser", "$.xgafv", "key"}
VOIDED_PARAMS = {"startTime", "endTime", "maxResults", "token", "type",
                 "includeQuantityBasedPartialRefund"}
PAGE_ALIASES = {"pageSelection.maxResults": "maxResults", "pageSelection.token": "token",
                "pageSelection.startIndex": "startIndex"}
MAX_RESULTS = 1000
SLACK_MS = 60_000


class GooglePlayFake:
    """Everything one fake holds; ``app.extensions["google_play_fake"]``."""

    def __init__(self, config: dict):
        lifetime = config.get("token_lifetime", 3600)
        if type(lifetime) is not int or lifetime < 1:
            raise ValueError("token_lifetime must be a positive int (seconds)")
        self.accounts = Accounts(lifetime)
        self.store = PlayStore()
        self.faults = Faults()
        self.log_lock = threading.Lock()
        self.log: deque[dict] = deque(maxlen=int(config.get("request_log_size", 10000)))

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
        self.accounts.reset()
        self.store.reset()
        self.faults.clear()
        with self.log_lock:
            self.log.clear()


def _json(status: int, body: dict, headers: dict | None = None) -> Response:
    response = Response(json.dumps(body), status, mimetype="application/json")
    response.headers.update(headers or {})
    return response


class ApiMiddleware:
    """Logs every ``/token`` and ``/androidpublisher/`` call and applies the fault rules (rule
    format: emulator/faults.py; ``phase`` makes no difference here)."""

    def __init__(self, app, fake: GooglePlayFake):
        self.app, self.fake = app, fake

    def __call__(self, environ, start_response):
        path = environ.get("PATH_INFO", "")
        if path != "/token" and not path.startswith("/androidpublisher/"):
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
            return drop_connection(environ, start_response, "google play fake")
        return self._fault_response(rule, path)(environ, logging_start_response)

    @staticmethod
    def _fault_response(rule, path: str) -> Response:
        status, message = rule["status"], rule["message"] or f"Injected fault ({rule['status']})."
        headers = {"Retry-After": str(rule["retry_after"])} if status == 429 else {}
        if path == "/token":
            error = rule["code"] or ("temporarily_unavailable" if status >= 500
                                     else "invalid_request")
            return _json(status, {"error": error, "error_description": message}, headers)
        return _json(status, GoogleError(status, message, rule["code"]).body(), headers)


def query(allowed: set = frozenset()) -> dict:
    """The query's own parameters (Google's standard ones are ignored); unknown ones are 400."""
    params = {}
    for key in request.args:
        name = PAGE_ALIASES.get(key, key)
        if name in allowed:
            params[name] = request.args.getlist(key)[-1]
        elif key not in STANDARD_PARAMS:
            raise bad(f'Invalid JSON payload received. Unknown name "{key}": '
                      "Cannot bind query parameter.")
    return params


def int_param(params: dict, name: str, default: int | None) -> int | None:
    raw = params.get(name)
    if raw in (None, ""):
        return default
    try:
        return int(raw)
    except ValueError:
        raise bad(f"Invalid value at '{name}' (TYPE_INT64), \"{raw}\"")


def action_body() -> str | None:
    """The optional ``{"developerPayload": ...}`` of :consume / :acknowledge."""
    raw = request.get_data()
    if not raw.strip():
        return None
    try:
        body = json.loads(raw)
    except ValueError:
        raise bad("Invalid JSON payload received.")
    if not isinstance(body, dict) or set(body) - {"developerPayload"}:
        raise bad('Invalid JSON payload received. Only "developerPayload" is allowed.')
    payload = body.get("developerPayload")
    if payload is not None and not isinstance(payload, str):
        raise bad("developerPayload must be a string")
    return payload


def split_action(token_action: str, allowed: tuple) -> tuple[str, str]:
    token, sep, action = token_action.rpartition(":")
    if not sep or not token or action not in allowed:
        raise GoogleError(404, f"Method not found: {request.method} {request.path}")
    return token, action


def create_google_app(config: dict | None = None) -> Flask:
    fake = GooglePlayFake(config or {})
    app = Flask("google_play_fake")
    app.json.sort_keys = False
    app.extensions["google_play_fake"] = fake
    app.wsgi_app = ApiMiddleware(app.wsgi_app, fake)

    @app.errorhandler(GoogleError)
    def google_error(err: GoogleError):
        return _json(err.code, err.body(), err.headers)

    @app.errorhandler(OAuthError)
    def oauth_error(err: OAuthError):
        return _json(err.status, err.body())

    @app.errorhandler(HTTPException)
    def http_error(err: HTTPException):
        if err.code in (404, 405):
            err = GoogleError(404, f"The requested URL {request.path} ({request.method}) was not "
                              "found. The Google Play fake serves only a few calls: "
                              "emulator/google_play_api.py.")
        else:
            err = GoogleError(err.code or 500, err.description or "HTTP error")
        return _json(err.code, err.body())

    @app.errorhandler(Exception)
    def unexpected(err: Exception):
        app.logger.exception("google play fake error")
        return _json(500, GoogleError(500, "Internal error in the Google Play fake.").body())

    @app.before_request
    def guard():
        if request.path.startswith("/_google"):
            addr = request.remote_addr or "127.0.0.1"
            if not addr.startswith(LOOPBACK) and addr != "localhost":
                raise GoogleError(403, "the Google Play fake's admin API is loopback only")
        elif request.path.startswith("/androidpublisher/"):
            fake.accounts.check(request.headers.get("Authorization", ""))

    @app.post("/token")
    def token():
        return fake.accounts.grant(request.form, request.url_root + "token")

    register_api(app, fake.store)
    register_admin(app, fake)
    return app


def register_api(app: Flask, store: PlayStore) -> None:
    @app.get(f"{API}/productsv2/tokens/<token>")
    def get_product_v2(package, token):
        query()
        return render_product_v2(store.product(package, token))

    @app.get(f"{API}/products/<product_id>/tokens/<token>")
    def get_product_v1(package, product_id, token):
        query()
        return render_product_v1(*store.product_line(package, product_id, token))

    @app.post(f"{API}/products/<product_id>/tokens/<token_action>")
    def product_action(package, product_id, token_action):
        query()
        token, action = split_action(token_action, ("consume", "acknowledge"))
        store.consume_or_acknowledge(package, product_id, token, action, action_body())
        return {}

    @app.get(f"{API}/subscriptionsv2/tokens/<token>")
    def get_subscription_v2(package, token):
        query()
        return render_subscription_v2(store.subscription(package, token))

    @app.post(f"{API}/subscriptions/<subscription_id>/tokens/<token_action>")
    def subscription_action(package, subscription_id, token_action):
        query()
        token, _ = split_action(token_action, ("acknowledge",))
        store.acknowledge_subscription(package, subscription_id, token, action_body())
        return {}

    @app.get(f"{API}/voidedpurchases")
    def list_voided(package):
        params = query(VOIDED_PARAMS | {"startIndex"})
        if "startIndex" in params:
            raise bad("startIndex is not supported here: voided purchases use token paging.")
        max_results = min(max(int_param(params, "maxResults", MAX_RESULTS), 1), MAX_RESULTS)
        if params.get("token"):
            window = decode_page_token(params["token"])
        else:
            window = voided_window(params)
        page, more = store.list_voided(package, window, max_results)
        out: dict = {}
        if more is not None:
            out["tokenPagination"] = {"nextPageToken": encode_page_token(more)}
        if page:  # like Google (proto3 JSON): an empty list is left out
            out["voidedPurchases"] = page
        return out


def voided_window(params: dict) -> dict:
    now = now_ms()
    start = int_param(params, "startTime", now - 30 * DAY_MS)
    end = int_param(params, "endTime", now)
    if start < now - 30 * DAY_MS - SLACK_MS:
        raise bad("startTime can not be older than 30 days.")
    if end > now + SLACK_MS:
        raise bad("endTime can not be in the future.")
    if start > end:
        raise bad("startTime must not be after endTime.")
    kind = int_param(params, "type", 0)
    if kind not in (0, 1):
        raise bad("type must be 0 (one-time products) or 1 (also subscriptions).")
    partial = params.get("includeQuantityBasedPartialRefund", "false").lower()
    if partial not in ("true", "false"):
        raise bad("includeQuantityBasedPartialRefund must be true or false.")
    return {"start": start, "end": end, "type": kind, "partial": partial == "true", "after": None}


def register_admin(app: Flask, fake: GooglePlayFake) -> None:
    store = fake.store

    def body():
        data = request.get_json(silent=True)
        if data is None:
            raise bad("the body must be JSON")
        return data

    @app.post("/_google/service_accounts")
    def admin_service_account():
        return fake.accounts.register(body(), request.url_root + "token")

    @app.post("/_google/tokens/expire")
    def admin_expire_tokens():
        return {"expired": fake.accounts.expire_tokens()}

    @app.post("/_google/products")
    def admin_create_product():
        return store.create_product(body())

    @app.get("/_google/products/<token>")
    def admin_get_product(token):
        return dict(store.product(None, token))

    @app.patch("/_google/products/<token>")
    def admin_update_product(token):
        return store.update_product(token, body())

    @app.post("/_google/subscriptions")
    def admin_create_subscription():
        return store.create_subscription(body())

    @app.get("/_google/subscriptions/<token>")
    def admin_get_subscription(token):
        return dict(store.subscription(None, token))

    @app.patch("/_google/subscriptions/<token>")
    def admin_update_subscription(token):
        return store.update_subscription(token, body())

    @app.post("/_google/subscriptions/<token>/renew")
    def admin_renew(token):
        return store.renew(token, request.get_json(silent=True) or {})

    @app.post("/_google/voided")
    def admin_void():
        return store.void(body())

    @app.route("/_google/faults", methods=["GET", "PUT", "POST", "DELETE"])
    def faults():
        if request.method == "DELETE":
            fake.faults.clear()
        elif request.method != "GET":
            try:
                fake.faults.replace(request.get_json(silent=True))
            except ApiError as err:
                raise bad(err.message)
        return {"rules": fake.faults.describe()}

    @app.get("/_google/requests")
    def requests_log():
        entries = fake.requests()
        return {"requests": entries, "count": len(entries)}

    @app.post("/_google/reset")
    def reset():
        fake.reset()
        return {"reset": True}


def mount_google(app: Flask, prefix: str = "/google", config: dict | None = None) -> Flask:
    """Serve a new fake under ``prefix`` in front of ``app``; other paths reach it unchanged."""
    google_app = create_google_app(config)
    app.wsgi_app = DispatcherMiddleware(app.wsgi_app, {prefix: google_app})
    return google_app
