"""The fake Stripe API's invoices: what kraty-bridge reads of a subscription's paid period.

An invoice is created through the admin API with its payments (``[{"payment_intent": id}]`` or
``[{"charge": id}]``, on the invoice's account) and its ``lines`` (InvoiceLineItem objects as an event carries
them; each keeps its ``id`` or gets one); the API serves ``GET /v1/invoices/{id}``,
``GET /v1/invoices/{id}/lines`` (cursor-paginated, as Stripe's: an event carries the first page only) and
``GET /v1/invoice_payments?invoice=`` (InvoicePayment objects, API version 2025-03-31 and later).
"""
from __future__ import annotations

import time

from emulator.stripe_store import StripeStore, _check_fields, _typed, bad, missing, new_id, visible

INVOICE_FIELDS = {"id", "livemode", "account", "currency", "amount_paid", "payments", "billing_reason", "lines"}


def create_invoice(store: StripeStore, body) -> dict:
    body = _check_fields(body, INVOICE_FIELDS, "an invoice")
    livemode = bool(_typed(body, "livemode", bool, False))
    currency = _typed(body, "currency", str, "usd").lower()
    amount = _typed(body, "amount_paid", int, 0)
    payments = _typed(body, "payments", list, [])
    lines = _typed(body, "lines", list, [])
    if not all(isinstance(line, dict) for line in lines):
        raise bad("an invoice's lines are line_item objects", "lines")
    with store.lock:
        account = store.owner(body)
        invoice_id = _typed(body, "id", str) or new_id("in")
        if invoice_id in store.invoices:
            raise bad(f"invoice {invoice_id} already exists", "id")
        invoice = {"id": invoice_id, "object": "invoice", "account": account, "livemode": livemode,
                   "currency": currency, "amount_paid": amount, "status": "paid",
                   "billing_reason": _typed(body, "billing_reason", str, "subscription_create"),
                   "created": int(time.time())}
        rows = []
        for raw in payments:
            raw = _check_fields(raw, {"payment_intent", "charge"}, "an invoice payment")
            kind = "payment_intent" if raw.get("payment_intent") else "charge"
            rows.append({"id": new_id("inpay"), "object": "invoice_payment", "amount_paid": amount,
                         "amount_requested": amount, "currency": currency, "invoice": invoice_id,
                         "is_default": not rows, "livemode": livemode,
                         "payment": {"type": kind, kind: _typed(raw, kind, str)}, "status": "paid",
                         "account": account})
        store.invoices[invoice_id] = invoice
        store.invoice_payments[invoice_id] = rows
        store.invoice_lines[invoice_id] = [{**line, "id": line.get("id") or new_id("il"), "object": "line_item",
                                            "invoice": invoice_id, "livemode": livemode} for line in lines]
    return invoice


def invoice(store: StripeStore, invoice_id: str, mode: str | None, account: str | None) -> dict:
    with store.lock:
        found = store.invoices.get(invoice_id)
    if found is None or not visible(found, mode, account):
        raise missing("invoice", invoice_id, "invoice", found)
    return found


def invoice_payments(store: StripeStore, invoice_id: str | None, mode: str | None, account: str | None) -> list[dict]:
    """The InvoicePayments of one invoice (an unknown or invisible invoice has none, as Stripe lists it)."""
    with store.lock:
        rows = [row for key, rows in store.invoice_payments.items() if invoice_id in (None, key) for row in rows]
    return [row for row in rows if visible(row, mode, account)]


def invoice_lines(store: StripeStore, invoice_id: str, mode: str | None, account: str | None) -> list[dict]:
    """The invoice's lines, in order (404 for an unknown or invisible invoice, as Stripe answers)."""
    invoice(store, invoice_id, mode, account)
    with store.lock:
        return list(store.invoice_lines.get(invoice_id, []))
