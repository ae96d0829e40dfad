"""The Stripe fake's charges and refunds (emulator/stripe_api.py serves them).

A PaymentIntent that succeeded has a Charge (its ``latest_charge``): the fake builds it from the
intent when asked, with ``amount_refunded`` and ``refunded`` from the refunds made on it, and — as
Stripe does since API version 2022-11-15 — without an embedded ``refunds`` list. Refunds are made
and moved between statuses through the admin API (``POST /_stripe/refunds``,
``PATCH /_stripe/refunds/<id>``), the way a studio's dashboard or the card network would.
"""
from __future__ import annotations

import time

from emulator.stripe_store import StripeStore, _check_fields, _typed, bad, missing, new_id, visible

REFUND_STATUSES = ("pending", "requires_action", "succeeded", "failed", "canceled")
HOLDING = ("pending", "requires_action", "succeeded")  # count in the charge's amount_refunded
REFUND_FIELDS = {"id", "charge", "payment_intent", "amount", "status", "failure_reason", "reason"}
REFUND_PATCH = {"status", "failure_reason"}


class ChargeBook:
    """Charges (derived from the store's PaymentIntents) and their refunds, under the store's lock."""

    def __init__(self, store: StripeStore):
        self.store = store
        self.reset()

    def reset(self) -> None:
        with self.store.lock:
            self.refunds: dict[str, dict] = {}   # in creation order

    def _intent_of(self, charge_id: str) -> dict | None:
        return next((i for i in self.store.intents.values() if i.get("latest_charge") == charge_id), None)

    def _charge(self, intent: dict) -> dict:
        refunded = sum(r["amount"] for r in self.refunds.values()
                       if r["charge"] == intent["latest_charge"] and r["status"] in HOLDING)
        amount = intent["amount_received"] or intent["amount"]
        return {"id": intent["latest_charge"], "object": "charge", "amount": amount, "amount_captured": amount,
                "amount_refunded": refunded, "balance_transaction": new_id("txn"), "captured": True,
                "created": intent["created"], "currency": intent["currency"], "customer": None,
                "disputed": False, "livemode": intent["livemode"], "metadata": {}, "paid": True,
                "payment_intent": intent["id"], "refunded": refunded >= amount, "status": "succeeded"}

    # ---- reads (the API) ------------------------------------------------------------------------
    def charge(self, charge_id: str, mode: str | None, account: str | None = None) -> dict:
        """A connected account's charges are seen only on that account (``Stripe-Account``), like its intents."""
        with self.store.lock:
            intent = self._intent_of(charge_id)
            if intent is None or not visible(intent, mode, account):
                raise missing("charge", charge_id, "charge", intent)
            return self._charge(intent)

    def refund(self, refund_id: str, mode: str | None, account: str | None = None) -> dict:
        with self.store.lock:
            found = self.refunds.get(refund_id)
        if found is None or not visible(found, mode, account):
            raise missing("refund", refund_id, "refund", found)
        return found

    def list_refunds(self, mode: str | None, charge: str | None, payment_intent: str | None,
                     account: str | None = None) -> list[dict]:
        """Newest first, like Stripe's lists; a charge or PaymentIntent the fake does not know is a 404."""
        if charge is not None:
            self.charge(charge, mode, account)
        if payment_intent is not None:
            self.store.intent(payment_intent, mode, account)
        with self.store.lock:
            found = [r for r in self.refunds.values() if visible(r, mode, account)
                     and charge in (None, r["charge"]) and payment_intent in (None, r["payment_intent"])]
        return found[::-1]

    # ---- writes (the admin API) -----------------------------------------------------------------
    def create_refund(self, body) -> dict:
        body = _check_fields(body, REFUND_FIELDS, "a refund")
        with self.store.lock:
            charge_id = _typed(body, "charge", str)
            if charge_id is None:
                intent = self.store.intents.get(_typed(body, "payment_intent", str) or "")
                charge_id = intent and intent["latest_charge"]
            intent = self._intent_of(charge_id) if charge_id else None
            if intent is None:
                raise bad("a refund names a charge (or a PaymentIntent) that has one", "charge")
            charge = self._charge(intent)
            left = charge["amount"] - charge["amount_refunded"]
            amount = _typed(body, "amount", int, left)
            if not 0 < amount <= left:
                raise bad(f"amount must be from 1 to {left}, what is left to refund", "amount")
            refund_id = _typed(body, "id", str) or new_id("re")
            if refund_id in self.refunds:
                raise bad(f"refund {refund_id} already exists", "id")
            status = _typed(body, "status", str, "succeeded", REFUND_STATUSES)
            refund = {"id": refund_id, "object": "refund", "amount": amount,
                      "balance_transaction": new_id("txn"), "charge": charge_id, "created": int(time.time()),
                      "currency": charge["currency"], "livemode": intent["livemode"], "metadata": {},
                      "payment_intent": intent["id"], "reason": _typed(body, "reason", str),
                      "receipt_number": None, "source_transfer_reversal": None, "status": status,
                      "transfer_reversal": None, "account": intent.get("account")}
            if status in ("failed", "canceled"):
                refund["failure_reason"] = _typed(body, "failure_reason", str, "unknown")
            self.refunds[refund_id] = refund
            return refund

    def update_refund(self, refund_id: str, body) -> dict:
        body = _check_fields(body, REFUND_PATCH, "a refund update")
        with self.store.lock:
            refund = self.refunds.get(refund_id)
            if refund is None:
                raise missing("refund", refund_id, "refund")
            changed = {**refund, "status": _typed(body, "status", str, refund["status"], REFUND_STATUSES)}
            if changed["status"] in ("failed", "canceled"):
                changed["failure_reason"] = _typed(body, "failure_reason", str, "expired_or_canceled_card")
            self.refunds[refund_id] = changed
            return changed

    def set_metadata(self, refund_id: str, metadata: dict) -> dict:
        with self.store.lock:
            refund = self.refunds[refund_id] = {**self.refunds[refund_id], "metadata": dict(metadata)}
            return refund

    def admin_charge(self, charge_id: str) -> dict:
        with self.store.lock:
            intent = self._intent_of(charge_id)
        return self.charge(charge_id, None, intent and intent.get("account"))

