"""The Stripe fake's ``POST /v1/refunds`` (what the bridge's refund action calls) and the events a refund makes.

    POST /v1/refunds   form-encoded like stripe-python sends it: payment_intent | charge, amount, reason
                       (duplicate | fraudulent | requested_by_customer), metadata[...]; ``Idempotency-Key``

As on Stripe: the same ``Idempotency-Key`` with the same parameters answers the first answer again (no second
refund), with other parameters ``400 idempotency_error``; a charge already refunded in full is
``400 charge_already_refunded``; more than is left is ``400 amount_too_large``. Every refund made here, and
every change to it through the admin API (``PATCH /_stripe/refunds/<id>``), records the events Stripe would send — ``refund.created`` and
``charge.refunded`` on creation, ``refund.updated`` (and ``refund.failed``) on a change — in the fake's event
list (``GET /v1/events``) and, when a webhook endpoint is set (``emulator/stripe_webhooks.py``), POSTed to it
signed, as Stripe does.
``PUT /_stripe/refund_status {"status": "pending"}`` makes new API refunds start pending (a bank refund).
"""
from __future__ import annotations

import re
import threading

from flask import Flask, g, request

from emulator.fake_api import json_body
from emulator.stripe_charges import ChargeBook
from emulator.stripe_events import EventBook
from emulator.stripe_store import StripeError
from emulator.stripe_webhooks import WebhookSender

REASONS = ("duplicate", "fraudulent", "requested_by_customer")
METADATA = re.compile(r"metadata\[([^\]]{1,40})\]\Z")
FIELDS = {"payment_intent", "charge", "amount", "reason"}


def _public(obj: dict) -> dict:
    return {key: value for key, value in obj.items() if key != "account"}


def _params() -> dict:
    params: dict = {"metadata": {}}
    for key in request.form:
        value = request.form.getlist(key)[-1]
        found = METADATA.fullmatch(key)
        if found:
            params["metadata"][found.group(1)] = value
        elif key in FIELDS or key.startswith("expand"):
            params[key] = value
        else:
            raise StripeError(400, f"Received unknown parameter: {key}", code="parameter_unknown", param=key)
    if "amount" in params:
        if not params["amount"].isdigit() or int(params["amount"]) < 1:
            raise StripeError(400, "Invalid positive integer", code="parameter_invalid_integer", param="amount")
        params["amount"] = int(params["amount"])
    if "reason" in params and params["reason"] not in REASONS:
        raise StripeError(400, f"Invalid reason: must be one of {', '.join(REASONS)}", param="reason")
    return params


class RefundsApi:
    """Refunds asked through the API, answered once per idempotency key; the events refunds make."""

    def __init__(self, book: ChargeBook, events: EventBook, sender: WebhookSender):
        self.book, self.events, self.sender = book, events, sender
        self.lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with self.lock:
            self.answers: dict[str, tuple[dict, dict]] = {}   # idempotency key -> (params, refund)
            self.status = "succeeded"  # what a new API refund is: ``pending`` like a bank refund, via the admin API
            self.made: set[str] = set()  # refunds made through the API: their changes make events

    def create(self, params: dict, key: str | None, mode: str | None, account: str | None) -> dict:
        with self.lock:
            if key is not None and key in self.answers:
                first, refund = self.answers[key]
                if first != params:
                    raise StripeError(400, "Keys for idempotent requests can only be used with the same parameters "
                                           "they were first used with.", "idempotency_error")
                return refund
            refund = self._make(params, mode, account)
            if key is not None:
                self.answers[key] = (params, refund)
        return refund

    def _make(self, params: dict, mode: str | None, account: str | None) -> dict:
        if "charge" in params:
            charge = self.book.charge(params["charge"], mode, account)
        elif "payment_intent" in params:
            intent = self.book.store.intent(params["payment_intent"], mode, account)
            charge = self.book.charge(intent["latest_charge"], mode, account)
        else:
            raise StripeError(400, "One of the following params should be provided for this request: payment_intent "
                                   "or charge.", param="charge")
        left = charge["amount"] - charge["amount_refunded"]
        if left <= 0:
            raise StripeError(400, f"Charge {charge['id']} has already been refunded.", code="charge_already_refunded",
                              param="charge")
        amount = params.get("amount", left)
        if amount > left:
            raise StripeError(400, f"Refund amount ({amount}) is greater than unrefunded amount on charge ({left})",
                              code="amount_too_large", param="amount")
        made = self.book.create_refund({"charge": charge["id"], "amount": amount, "reason": params.get("reason"),
                                        "status": self.status})
        made = self.book.set_metadata(made["id"], params["metadata"])
        self.made.add(made["id"])
        self.created(made)
        return made

    def created(self, refund: dict) -> None:
        """``refund.created`` and ``charge.refunded``, as Stripe sends them for a new refund."""
        self._emit("refund.created", _public(refund), refund.get("account"))
        self._emit("charge.refunded", self.book.admin_charge(refund["charge"]), refund.get("account"))

    def updated(self, refund: dict) -> None:
        """``refund.updated`` (and ``refund.failed``) for a refund made through the API (the admin API's own
        refunds make no events: tests post theirs)."""
        if refund["id"] not in self.made:
            return
        self._emit("refund.updated", _public(refund), refund.get("account"))
        if refund["status"] in ("failed", "canceled"):
            self._emit("refund.failed", _public(refund), refund.get("account"))

    def _emit(self, type_: str, obj: dict, account: str | None) -> None:
        """Recorded in the event list, and sent to the webhook endpoint if one is set."""
        self.sender.send(self.events.create({"type": type_, "object": obj, "account": account}))


def register_refunds(app: Flask, api: RefundsApi) -> None:
    @app.put("/_stripe/refund_status")
    def admin_refund_status():
        """``{"status": "pending"}``: refunds made through the API start in that status (default succeeded)."""
        body = json_body(lambda message: StripeError(400, message))
        status = body.get("status") if isinstance(body, dict) else None
        if status not in ("pending", "requires_action", "succeeded", "failed"):
            raise StripeError(400, "status: pending, requires_action, succeeded or failed", param="status")
        api.status = status
        return {"status": status}

    @app.post("/v1/refunds")
    def create_refund():
        if request.args:
            raise StripeError(400, "Parameters go in the form body", param=next(iter(request.args)))
        return _public(api.create(_params(), request.headers.get("Idempotency-Key"), g.mode, g.account))
