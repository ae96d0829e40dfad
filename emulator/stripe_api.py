"""A local fake of the few Stripe API calls kraty-bridge makes, in Stripe's wire format, and the
``/_stripe`` admin API that tests and local runs use to create objects and inject faults.

``create_stripe_app(config)`` builds a fresh, independent fake (no state or I/O at import), its
state in memory behind one lock. ``mount_stripe(app)`` serves one under ``/stripe`` in front of
another Flask app (``python -m emulator`` does that). The served calls (GET, and one POST):

    /v1/checkout/sessions/{id}             expand: line_items (first 10), payment_intent
    /v1/checkout/sessions/{id}/line_items  limit (1..100, default 10), starting_after|ending_before
    /v1/checkout/sessions                  payment_intent, customer, status, pagination, expand
                                           data.line_items, data.payment_intent
    /v1/payment_intents/{id}
    /v1/charges/{id}                       (a succeeded PaymentIntent's latest_charge: emulator/stripe_charges.py)
    /v1/refunds/{id}
    /v1/refunds                            charge, payment_intent, pagination
    POST /v1/refunds                       payment_intent | charge, amount, reason, metadata (emulator/stripe_refunds.py)
    /v1/invoices/{id}
    /v1/invoices/{id}/lines                pagination (an event carries the first page)
    /v1/invoice_payments                   invoice, pagination

A ``Stripe-Account: acct_...`` header reads that connected account's objects (only those); an account
the fake does not know is Stripe's 403. Admin: ``POST /_stripe/accounts`` creates one, and sessions,
PaymentIntents and invoices take ``account``.

Keys: ``Authorization: Bearer <key>``: any ``sk_test_``, ``sk_live_`` or ``rk_`` key, or only
``config["api_keys"]`` when given. A key with ``_test_``/``_live_`` in it sees only its mode's
objects (as on Stripe, the other mode's object is a 404); other configured keys see both.
"""
from __future__ import annotations

import re

from flask import Flask, Response, g, request
from werkzeug.exceptions import HTTPException

from emulator.fake_api import (FakeState, from_loopback, json_body, json_response, mount, new_fake_app,
                       register_common_admin)
from emulator.stripe_charges import ChargeBook
from emulator import stripe_invoices
from emulator.stripe_events import EventBook, register_events
from emulator.stripe_params import StripeError, list_object, new_id
from emulator.stripe_refunds import RefundsApi, register_refunds
from emulator.stripe_webhooks import WebhookSender, register_webhooks
from emulator.stripe_store import StripeStore

DEFAULT_KEY_PREFIXES = ("sk_test_", "sk_live_", "rk_")
EXPAND_KEY = re.compile(r"expand\[\d*\]")
PAGE_PARAMS = ("limit", "starting_after", "ending_before")
SESSION_FILTERS = ("payment_intent", "customer", "status")
FAULT_TYPES = {402: ("card_error", "card_declined"),
               404: ("invalid_request_error", "resource_missing"),
               429: ("invalid_request_error", "rate_limit")}


class StripeFake(FakeState):
    """Everything one fake holds; ``app.extensions["stripe_fake"]``."""

    def __init__(self, config: dict):
        keys = config.get("api_keys")
        if keys is not None and not (isinstance(keys, list)
                                     and all(isinstance(k, str) and k for k in keys)):
            raise ValueError("api_keys must be a list of non-empty strings")
        self.api_keys = None if keys is None else frozenset(keys)
        self.store = StripeStore()
        self.charges = ChargeBook(self.store)
        self.events = EventBook()  # GET /v1/events (emulator/stripe_events.py)
        self.webhooks = WebhookSender()  # PUT /_stripe/webhook_endpoint (emulator/stripe_webhooks.py)
        self.refunds = RefundsApi(self.charges, self.events, self.webhooks)  # POST /v1/refunds
        super().__init__(config)

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

    def reset(self) -> None:
        self.store.reset()
        self.charges.reset()
        self.events.reset()
        self.refunds.reset()
        self.webhooks.reset()
        super().reset()


def fault_response(rule: dict, path: str, message: str) -> Response:
    """An injected fault's answer, in Stripe's error shape."""
    status = rule["status"]
    type_, code = FAULT_TYPES.get(
        status, ("api_error" if status >= 500 else "invalid_request_error", None))
    err = StripeError(status, message, type_, rule["code"] or code)
    return json_response(status, err.body(), {"Request-Id": new_id("req", 14)})


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


def public(obj: dict) -> dict:
    """An object as Stripe shows it: which account holds it is the fake's own bookkeeping."""
    return {key: value for key, value in obj.items() if key != "account"}


def create_stripe_app(config: dict | None = None) -> Flask:
    fake = StripeFake(config or {})
    app = new_fake_app("stripe_fake", fake, "stripe fake", lambda path: path.startswith("/v1/"),
                       fault_response)

    @app.errorhandler(StripeError)
    def stripe_error(err: StripeError):
        return json_response(err.status, err.body(), err.headers)

    @app.errorhandler(HTTPException)
    def http_error(err: HTTPException):
        if err.code in (404, 405):
            err = StripeError(404, f"Unrecognized request URL ({request.method}: {request.path}). "
                              "The Stripe fake serves only a few calls: emulator/stripe_api.py.")
        else:
            err = StripeError(err.code or 500, err.description or "HTTP error")
        return json_response(err.status, err.body())

    @app.errorhandler(Exception)
    def unexpected(err: Exception):
        app.logger.exception("stripe fake error")
        err = StripeError(500, "Internal error in the Stripe fake.", "api_error")
        return json_response(500, err.body())

    @app.before_request
    def guard():
        if request.path.startswith("/_stripe"):
            if not from_loopback():
                raise StripeError(403, "the Stripe fake's admin API is loopback only")
        elif request.path.startswith("/v1/"):
            g.mode = fake.key_mode(request.headers.get("Authorization", ""))
            g.account = request.headers.get("Stripe-Account") or None
            fake.store.check_account(g.account)

    @app.after_request
    def request_id(response: Response):
        if request.path.startswith("/v1/"):
            response.headers.setdefault("Request-Id", new_id("req", 14))
        return response

    register_api(app, fake.store)
    register_charges(app, fake.charges)
    register_events(app, fake.events)
    register_refunds(app, fake.refunds)
    register_webhooks(app, fake.webhooks)
    register_admin(app, fake)
    return app


def register_api(app: Flask, store: StripeStore) -> None:
    def items_url(session_id: str) -> str:
        return f"/v1/checkout/sessions/{session_id}/line_items"

    def render_session(session: dict, expand: list[str], prefix: str = "") -> dict:
        out = public(session)
        if f"{prefix}payment_intent" in expand and out["payment_intent"]:
            out["payment_intent"] = public(store.intent(out["payment_intent"], None, session["account"]))
        if f"{prefix}line_items" in expand:
            out["line_items"] = list_object(store.line_items(session["id"], None, session["account"]),
                                            items_url(session["id"]), {}, "line item")
        return out

    @app.get("/v1/checkout/sessions/<session_id>")
    def retrieve_session(session_id):
        _, expand = read_params(expandable=("line_items", "payment_intent"))
        return render_session(store.session(session_id, g.mode, g.account), expand)

    @app.get("/v1/checkout/sessions/<session_id>/line_items")
    def list_line_items(session_id):
        params, _ = read_params(PAGE_PARAMS)
        return list_object(store.line_items(session_id, g.mode, g.account), items_url(session_id), params,
                           "line item")

    @app.get("/v1/checkout/sessions")
    def list_sessions():
        params, expand = read_params(PAGE_PARAMS + SESSION_FILTERS,
                                     ("data.line_items", "data.payment_intent"))
        sessions = store.list_sessions(g.mode, {k: params.get(k) for k in SESSION_FILTERS}, g.account)
        listed = list_object(sessions, "/v1/checkout/sessions", params, "checkout.session")
        listed["data"] = [render_session(s, expand, "data.") for s in listed["data"]]
        return listed

    @app.get("/v1/payment_intents/<intent_id>")
    def retrieve_intent(intent_id):
        read_params()
        return public(store.intent(intent_id, g.mode, g.account))

    @app.get("/v1/invoices/<invoice_id>")
    def retrieve_invoice(invoice_id):
        read_params()
        return public(stripe_invoices.invoice(store, invoice_id, g.mode, g.account))

    @app.get("/v1/invoices/<invoice_id>/lines")
    def list_invoice_lines(invoice_id):
        params, _ = read_params(PAGE_PARAMS)
        return list_object(stripe_invoices.invoice_lines(store, invoice_id, g.mode, g.account),
                           f"/v1/invoices/{invoice_id}/lines", params, "line item")

    @app.get("/v1/invoice_payments")
    def list_invoice_payments():
        params, _ = read_params(PAGE_PARAMS + ("invoice",))
        rows = [public(row) for row in stripe_invoices.invoice_payments(store, params.get("invoice"), g.mode,
                                                                         g.account)]
        return list_object(rows, "/v1/invoice_payments", params, "invoice payment")


def register_charges(app: Flask, book: ChargeBook) -> None:
    @app.get("/v1/charges/<charge_id>")
    def retrieve_charge(charge_id):
        read_params()
        return book.charge(charge_id, g.mode, g.account)

    @app.get("/v1/refunds/<refund_id>")
    def retrieve_refund(refund_id):
        read_params()
        return public(book.refund(refund_id, g.mode, g.account))

    @app.get("/v1/refunds")
    def list_refunds():
        params, _ = read_params(PAGE_PARAMS + ("charge", "payment_intent"))
        return list_object([public(r) for r in book.list_refunds(g.mode, params.get("charge"),
                                                                  params.get("payment_intent"), g.account)],
                           "/v1/refunds", params, "refund")


def register_admin(app: Flask, fake: StripeFake) -> None:
    store = fake.store

    def body():
        return json_body(lambda message: StripeError(400, message))

    def with_items(session: dict, items: list[dict]) -> dict:
        """Admin answers carry ALL the line items (the API's expand gives the first 10)."""
        url = f"/v1/checkout/sessions/{session['id']}/line_items"
        return {**public(session),
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
        return public(store.create_intent(body()))

    @app.post("/_stripe/accounts")
    def admin_create_account():
        return store.create_account(body())

    @app.post("/_stripe/invoices")
    def admin_create_invoice():
        return public(stripe_invoices.create_invoice(store, body()))

    @app.post("/_stripe/refunds")
    def admin_create_refund():
        return public(fake.charges.create_refund(body()))

    @app.patch("/_stripe/refunds/<refund_id>")
    def admin_update_refund(refund_id):
        changed = fake.charges.update_refund(refund_id, body())
        fake.refunds.updated(changed)
        return public(changed)

    @app.get("/_stripe/charges/<charge_id>")
    def admin_charge(charge_id):
        return fake.charges.admin_charge(charge_id)

    register_common_admin(app, "/_stripe", fake, lambda err: StripeError(
        400, err.message, param=next(iter(err.details), None)))


def mount_stripe(app: Flask, prefix: str = "/stripe", config: dict | None = None) -> Flask:
    """Serve a new fake under ``prefix`` in front of ``app``; other paths reach it unchanged."""
    return mount(app, prefix, create_stripe_app(config))
