"""The Stripe fake's served reads (emulator/stripe_api.py builds the app): Checkout Sessions and their line
items, PaymentIntents, invoices, their lines and payments, charges and refunds, each in Stripe's wire format,
and the query parameters (``expand``, pagination, filters) Stripe checks on them."""
from __future__ import annotations

import re

from flask import Flask, g, request

from emulator import stripe_invoices
from emulator.stripe_charges import ChargeBook
from emulator.stripe_params import PAGE_PARAMS, StripeError, list_object
from emulator.stripe_store import StripeStore

EXPAND_KEY = re.compile(r"expand\[\d*\]")
SESSION_FILTERS = ("payment_intent", "customer", "status")


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
