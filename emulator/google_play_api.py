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
    POST /androidpublisher/v3/applications/{packageName}/orders/{orderId}:refund   revoke (google_play_orders.py)

Config: ``token_lifetime`` (seconds, default 3600), ``request_log_size`` (default 10000).
"""
from __future__ import annotations

import json

from flask import Flask, Response, request
from werkzeug.exceptions import HTTPException

from emulator.fake_api import (FakeState, from_loopback, json_body, json_response, mount, new_fake_app,
                       register_common_admin)
from emulator.google_play_auth import Accounts, OAuthError
from emulator.google_play_orders import register_orders
from emulator.google_play_store import PlayStore
from emulator.google_play_wire import (DAY_MS, GoogleError, bad, decode_page_token, encode_page_token,
                               now_ms, render_product_v1, render_product_v2,
                               render_subscription_v2)

API = "/androidpublisher/v3/applications/<package>/purchases"
STANDARD_PARAMS = {"alt", "fields", "prettyPrint", "quotaUser", "$.xgafv", "key"}
VOIDED_PARAMS = {"startTime", "endTime", "maxResults", "token", "type",
                 "includeQuantityBasedPartialRefund"}
PAGE_ALIASES = {"pageSelection.maxResults": "maxResults", "pageSelection.token": "token",
                "pageSelection.startIndex": "startIndex"}
MAX_RESULTS = 1000
SLACK_MS = 60_000


class GooglePlayFake(FakeState):
    """Everything one fake holds; ``app.extensions["google_play_fake"]``."""

    def __init__(self, config: dict):
        lifetime = config.get("token_lifetime", 3600)
        if type(lifetime) is not int or lifetime < 1:
            raise ValueError("token_lifetime must be a positive int (seconds)")
        self.accounts = Accounts(lifetime)
        self.store = PlayStore()
        super().__init__(config)

    def reset(self) -> None:
        self.accounts.reset()
        self.store.reset()
        super().reset()


def is_api_call(path: str) -> bool:
    return path == "/token" or path.startswith("/androidpublisher/")


def fault_response(rule: dict, path: str, message: str) -> Response:
    """An injected fault's answer: OAuth's error shape on ``/token``, else Google's."""
    status = rule["status"]
    if path == "/token":
        error = rule["code"] or ("temporarily_unavailable" if status >= 500 else "invalid_request")
        return json_response(status, {"error": error, "error_description": message})
    return json_response(status, GoogleError(status, message, rule["code"]).body())


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
    app = new_fake_app("google_play_fake", fake, "google play fake", is_api_call, fault_response)

    @app.errorhandler(GoogleError)
    def google_error(err: GoogleError):
        return json_response(err.code, err.body(), err.headers)

    @app.errorhandler(OAuthError)
    def oauth_error(err: OAuthError):
        return json_response(err.status, err.body())

    @app.errorhandler(HTTPException)
    def http_error(err: HTTPException):
        if err.code in (404, 405):
            err = GoogleError(404, f"The requested URL {request.path} ({request.method}) was not "
                              "found. The Google Play fake serves only a few calls: "
                              "emulator/google_play_api.py.")
        else:
            err = GoogleError(err.code or 500, err.description or "HTTP error")
        return json_response(err.code, err.body())

    @app.errorhandler(Exception)
    def unexpected(err: Exception):
        app.logger.exception("google play fake error")
        err = GoogleError(500, "Internal error in the Google Play fake.")
        return json_response(500, err.body())

    @app.before_request
    def guard():
        if request.path.startswith("/_google"):
            if not from_loopback():
                raise GoogleError(403, "the Google Play fake's admin API is loopback only")
        elif request.path.startswith("/androidpublisher/"):
            fake.accounts.check(request.headers.get("Authorization", ""))

    @app.post("/token")
    def token():
        return fake.accounts.grant(request.form, request.url_root + "token")

    register_api(app, fake.store)
    register_orders(app, fake.store, query)
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
        return json_body(bad)

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

    register_common_admin(app, "/_google", fake, lambda err: bad(err.message))


def mount_google(app: Flask, prefix: str = "/google", config: dict | None = None) -> Flask:
    """Serve a new fake under ``prefix`` in front of ``app``; other paths reach it unchanged."""
    return mount(app, prefix, create_google_app(config))
