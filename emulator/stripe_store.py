"""The fake Stripe API's objects (emulator/stripe_api.py): Checkout Sessions and their line
items, PaymentIntents and the prices seen so far, connected accounts (and invoices,
emulator/stripe_invoices.py), in memory behind one lock; ids like Stripe's; Stripe's cursor pagination.
An object created on a connected account (``account``) is seen only by requests naming that account
(``Stripe-Account``), as on Stripe: the platform and other accounts get a 404.

Stored objects are never changed in place (an update stores a new dict), so a reader may serialise
what it got after the lock is released.
"""
from __future__ import annotations

import threading
import time

from emulator.stripe_params import (
    StripeError,
    _amount,
    _check_fields,
    _metadata,
    _typed,
    bad,
    missing,
    new_id,
    visible,
)

SESSION_STATUSES = ("open", "complete", "expired")
PAYMENT_STATUSES = ("paid", "unpaid", "no_payment_required")
INTENT_STATUSES = ("requires_payment_method", "requires_confirmation", "requires_action",
                   "processing", "requires_capture", "canceled", "succeeded")
DEFAULT_UNIT_AMOUNT = 100
SESSION_FIELDS = {"id", "livemode", "payment_status", "status", "client_reference_id", "customer",
                  "metadata", "payment_intent", "payment_intent_metadata", "currency", "line_items",
                  "created", "mode", "discount", "account"}
SESSION_MODES = ("payment", "subscription", "setup")
LINE_FIELDS = {"price", "product", "lookup_key", "quantity", "unit_amount", "description"}
INTENT_FIELDS = {"id", "amount", "currency", "metadata", "livemode", "status", "latest_charge",
                 "created", "account"}
PATCH_FIELDS = {"metadata", "client_reference_id", "customer", "status", "payment_status"}


class StripeStore:
    def __init__(self):
        self.lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with self.lock:
            self.sessions: dict[str, dict] = {}
            self.items: dict[str, list[dict]] = {}      # session id -> its line items, in order
            self.intents: dict[str, dict] = {}
            self.prices: dict[str, dict] = {}  # price id -> product, lookup_key, unit_amount
            self.by_intent: dict[str, list[str]] = {}   # payment intent id -> session ids
            self.accounts: set[str] = set()             # connected accounts (Stripe Connect)
            self.invoices: dict[str, dict] = {}         # emulator/stripe_invoices.py
            self.invoice_payments: dict[str, list[dict]] = {}  # invoice id -> its InvoicePayment objects
            self.invoice_lines: dict[str, list[dict]] = {}     # invoice id -> its InvoiceLineItem objects

    # ---- reads (the API) ------------------------------------------------------------------------
    def session(self, session_id: str, mode: str | None, account: str | None = None) -> dict:
        with self.lock:
            found = self.sessions.get(session_id)
        if found is None or not visible(found, mode, account):
            raise missing("checkout.session", session_id, "session", found)
        return found

    def line_items(self, session_id: str, mode: str | None, account: str | None = None) -> list[dict]:
        self.session(session_id, mode, account)
        with self.lock:
            return self.items[session_id]

    def intent(self, intent_id: str, mode: str | None, account: str | None = None) -> dict:
        with self.lock:
            found = self.intents.get(intent_id)
        if found is None or not visible(found, mode, account):
            raise missing("payment_intent", intent_id, "intent", found)
        return found

    def list_sessions(self, mode: str | None, filters: dict, account: str | None = None) -> list[dict]:
        """Newest first, like Stripe's lists."""
        with self.lock:
            if filters.get("payment_intent") is not None:
                ids = self.by_intent.get(filters["payment_intent"], ())
                found = [self.sessions[s] for s in ids]
            else:
                found = list(self.sessions.values())
        found = [s for s in found if visible(s, mode, account)
                 and all(s.get(k) == v for k, v in filters.items() if v is not None)]
        found.reverse()  # then a stable sort: ties on created stay newest first
        return sorted(found, key=lambda s: s["created"], reverse=True)

    def check_account(self, account: str | None) -> None:
        """Stripe's answer to a Stripe-Account header naming an account the key cannot act on."""
        with self.lock:
            known = account is None or account in self.accounts
        if not known:
            raise StripeError(403, f"The provided key does not have access to account '{account}' (or that "
                              "account does not exist). Application access may have been revoked.",
                              type_="invalid_request_error", code="account_invalid")

    def owner(self, body: dict) -> str | None:
        """The connected account an admin-created object lives on (it must exist); None: the platform."""
        account = _typed(body, "account", str)
        if account is not None and account not in self.accounts:
            raise bad(f"no connected account {account}: create it first", "account")
        return account

    # ---- writes (the admin API) -----------------------------------------------------------------
    def create_account(self, body) -> dict:
        body = _check_fields(body, {"id"}, "an account")
        with self.lock:
            account = _typed(body, "id", str) or new_id("acct", 16)
            self.accounts.add(account)
        return {"id": account, "object": "account", "type": "standard"}

    def create_intent(self, body) -> dict:
        body = _check_fields(body, INTENT_FIELDS, "a payment intent")
        with self.lock:
            return self._create_intent(body)

    def _create_intent(self, body: dict) -> dict:
        livemode = bool(_typed(body, "livemode", bool, False))
        intent_id = _typed(body, "id", str) or new_id("pi")
        if intent_id in self.intents:
            raise bad(f"payment_intent {intent_id} already exists", "id")
        status = _typed(body, "status", str, "succeeded", INTENT_STATUSES)
        amount = _amount(body, "amount")
        default_charge = new_id("ch") if status in ("succeeded", "processing") else None
        intent = {"id": intent_id, "object": "payment_intent", "amount": amount, "account": self.owner(body),
                  "amount_received": amount if status == "succeeded" else 0,
                  "created": _typed(body, "created", int) or int(time.time()),
                  "currency": _typed(body, "currency", str, "usd").lower(),
                  "latest_charge": _typed(body, "latest_charge", str, default_charge),
                  "livemode": livemode, "metadata": _metadata(body), "status": status}
        self.intents[intent_id] = intent
        return intent

    def _line_item(self, raw, currency: str, livemode: bool) -> dict:
        raw = _check_fields(raw, LINE_FIELDS, "a line item")
        price_id = _typed(raw, "price", str) or new_id("price")
        known = self.prices.get(price_id, {})
        product = _typed(raw, "product", str) or known.get("product") or new_id("prod", 14)
        lookup_key = _typed(raw, "lookup_key", str, known.get("lookup_key"))
        unit_amount = _amount(raw, "unit_amount", known.get("unit_amount", DEFAULT_UNIT_AMOUNT))
        quantity = None if "quantity" in raw and raw["quantity"] is None else _typed(raw, "quantity", int, 1)
        if quantity is not None and quantity < 1:
            raise bad("quantity must be >= 1", "quantity")
        self.prices[price_id] = {"product": product, "lookup_key": lookup_key,
                                 "unit_amount": unit_amount}
        total = unit_amount * (quantity or 1)
        price = None if "price" in raw and raw["price"] is None else {  # LineItem.price is Optional
            "id": price_id, "object": "price", "active": True, "currency": currency, "livemode": livemode,
            "lookup_key": lookup_key, "product": product, "type": "one_time", "unit_amount": unit_amount}
        return {"id": new_id("li"), "object": "item", "amount_discount": 0,
                "amount_subtotal": total, "amount_tax": 0, "amount_total": total,
                "currency": currency,
                "description": _typed(raw, "description", str, lookup_key or product),
                "price": price, "quantity": quantity}

    def create_session(self, body) -> tuple[dict, list[dict]]:
        body = _check_fields(body, SESSION_FIELDS, "a checkout session")
        livemode = bool(_typed(body, "livemode", bool, False))
        currency = _typed(body, "currency", str, "usd").lower()
        raw_items = _typed(body, "line_items", list, [])
        payment_status = _typed(body, "payment_status", str, "paid", PAYMENT_STATUSES)
        status = _typed(body, "status", str, "complete", SESSION_STATUSES)
        if payment_status == "unpaid":  # an async payment still pending, or not paid yet
            intent_status = "processing" if status == "complete" else "requires_payment_method"
        else:
            intent_status = "succeeded"
        fields = {"client_reference_id": _typed(body, "client_reference_id", str),
                  "created": _typed(body, "created", int) or int(time.time()),
                  "currency": currency, "customer": _typed(body, "customer", str),
                  "livemode": livemode, "metadata": _metadata(body),
                  "mode": _typed(body, "mode", str, "payment", SESSION_MODES)}
        intent_metadata = _metadata(body, "payment_intent_metadata")
        discount = _amount(body, "discount", 0)
        with self.lock:
            fields["account"] = self.owner(body)
            session_id = _typed(body, "id", str) or new_id("cs", 58, livemode)
            if session_id in self.sessions:
                raise bad(f"checkout.session {session_id} already exists", "id")
            items = [self._line_item(raw, currency, livemode) for raw in raw_items]
            subtotal = sum(item["amount_total"] for item in items)
            total = max(subtotal - discount, 0)
            intent_id = _typed(body, "payment_intent", str, None if "payment_intent" in body or
                               payment_status == "no_payment_required" or fields["mode"] != "payment"
                               else new_id("pi"))
            if intent_id is not None and intent_id not in self.intents:
                self._create_intent({"id": intent_id, "amount": total, "currency": currency,
                                     "livemode": livemode, "status": intent_status,
                                     "metadata": intent_metadata, "account": fields["account"]})
            session = {"id": session_id, "object": "checkout.session", "amount_subtotal": subtotal,
                       "amount_total": total, **fields, "payment_intent": intent_id,
                       "total_details": {"amount_discount": discount, "amount_shipping": 0, "amount_tax": 0},
                       "payment_status": payment_status, "status": status}
            self.sessions[session_id] = session
            self.items[session_id] = items
            if intent_id is not None:
                self.by_intent.setdefault(intent_id, []).append(session_id)
            return session, items

    def update_session(self, session_id: str, body) -> dict:
        """Stripe's metadata merge: given keys are set, keys given as "" or null are removed."""
        body = _check_fields(body, PATCH_FIELDS, "a session update")
        with self.lock:
            session = self.sessions.get(session_id)
            if session is None:
                raise missing("checkout.session", session_id, "session")
            changed = dict(session)
            if "metadata" in body:
                patch = body["metadata"] or {}
                if not isinstance(patch, dict):
                    raise bad("metadata must be an object", "metadata")
                merged = {**session["metadata"], **{str(k): v for k, v in patch.items()}}
                changed["metadata"] = {k: str(v) for k, v in merged.items() if v not in ("", None)}
            for key, choices in (("client_reference_id", None), ("customer", None),
                                 ("status", SESSION_STATUSES),
                                 ("payment_status", PAYMENT_STATUSES)):
                if key in body:
                    changed[key] = _typed(body, key, str, None, choices)
            self.sessions[session_id] = changed
            return changed
