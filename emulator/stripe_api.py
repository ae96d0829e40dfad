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

from flask import Flask, Response, g, request
from werkzeug.exceptions import HTTPException

from emulator.fake_api import (FakeState, from_loopback, json_body, json_response, mount, new_fake_app,
                       register_common_admin)
from emulator.stripe_charges import ChargeBook
from emulator import stripe_invoices
from emulator.stripe_events import EventBook, register_events
from emulator.stripe_params import StripeError, new_id
from emulator.stripe_reads import public, register_api, register_charges
from emulator.stripe_refunds import RefundsApi, register_refunds
from emulator.stripe_webhooks import WebhookSender, register_webhooks
from emulator.stripe_store import StripeStore

DEFAULT_KEY_PREFIXES = ("sk_test_", "sk_live_", "rk_")
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
