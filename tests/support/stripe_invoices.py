"""Stripe subscription invoices for tests, shaped like stripe-python's Invoice / InvoiceLineItem / InvoicePayment
models and the invoice fixtures of ``stripe/openapi`` (API version 2025-03-31.basil and later: ``pricing`` on
lines, ``parent.subscription_details``, ``payments``; ``legacy=True``: the 2025-02-24.acacia shape with a line
``price`` and top-level ``payment_intent`` / ``charge``)."""
from __future__ import annotations

import itertools
import time

from tests.support.stripe_events import event

BASIL, ACACIA = "2025-03-31.basil", "2025-02-24.acacia"
_ids = itertools.count(1)
_UNSET = object()


def _line(invoice_id: str, price: str | None, product: str, quantity: int | None, amount: int, legacy: bool) -> dict:
    now, n = int(time.time()), next(_ids)
    line = {"id": f"il_test_{n}", "object": "line_item", "amount": amount, "currency": "usd",
            "description": f"{quantity or ''} x {product}", "discount_amounts": [], "discountable": True,
            "discounts": [], "invoice": invoice_id, "livemode": False, "metadata": {},
            "period": {"end": now + 30 * 86400, "start": now}, "quantity": quantity, "taxes": []}
    if legacy:
        line["price"] = None if price is None else {
            "id": price, "object": "price", "active": True, "currency": "usd", "livemode": False,
            "lookup_key": None, "product": product, "recurring": {"interval": "month", "interval_count": 1},
            "type": "recurring", "unit_amount": amount // (quantity or 1)}
        line.update({"proration": amount < 0, "subscription": "sub_test_1", "type": "subscription"})
    else:
        line["parent"] = {"type": "subscription_item_details", "invoice_item_details": None,
                          "subscription_item_details": {"invoice_item": None, "proration": amount < 0,
                                                        "proration_details": {"credited_items": None},
                                                        "subscription": "sub_test_1",
                                                        "subscription_item": f"si_test_{n}"}}
        line["pricing"] = None if price is None else {
            "price_details": {"price": price, "product": product}, "type": "price_details",
            "unit_amount_decimal": str(amount // (quantity or 1))}
    return line


def invoice(*lines, invoice_id: str | None = None, billing_reason: str = "subscription_create",
            amount_paid: int | None = None, discount: int = 0, payments=_UNSET, player: str = "player-1",
            legacy: bool = False, payment_intent: str | None = None, charge: str | None = None) -> dict:
    """``lines``: (price id or None, product id, quantity or None, amount). ``payments``: (payment_intent,
    charge) pairs to embed as InvoicePayments, or left unset: no ``payments`` (fetched by the bridge)."""
    invoice_id = invoice_id or f"in_test_{next(_ids)}_{int(time.time() * 1000)}"
    items = [_line(invoice_id, *line, legacy=legacy) for line in lines or [("price_vip_monthly", "prod_vip", 1, 499)]]
    subtotal = sum(item["amount"] for item in items)
    total = max(subtotal - discount, 0)
    paid = total if amount_paid is None else amount_paid
    obj = {"id": invoice_id, "object": "invoice", "account_country": "US", "amount_due": paid, "amount_paid": paid,
           "amount_remaining": 0, "attempt_count": 1, "attempted": True, "billing_reason": billing_reason,
           "collection_method": "charge_automatically", "created": int(time.time()), "currency": "usd",
           "customer": "cus_test_1", "discounts": ["di_test_1"] if discount else [], "ending_balance": 0,
           "lines": {"object": "list", "data": items, "has_more": False, "total_count": len(items),
                     "url": f"/v1/invoices/{invoice_id}/lines"},
           "livemode": False, "metadata": {}, "starting_balance": 0, "status": "paid", "subtotal": subtotal,
           "total": total, "total_discount_amounts": [{"amount": discount, "discount": "di_test_1"}] if discount else []}
    metadata = {"player_id": player} if player else {}
    if legacy:
        obj.update({"payment_intent": payment_intent, "charge": charge, "subscription": "sub_test_1",
                    "subscription_details": {"metadata": metadata}})
    else:
        obj["parent"] = {"type": "subscription_details", "quote_details": None,
                         "subscription_details": {"metadata": metadata, "subscription": "sub_test_1"}}
    if payments is not _UNSET:
        obj["payments"] = {"object": "list", "has_more": False, "url": "/v1/invoice_payments", "data": [
            {"id": f"inpay_test_{next(_ids)}", "object": "invoice_payment", "amount_paid": paid,
             "amount_requested": paid, "created": int(time.time()), "currency": "usd", "invoice": invoice_id,
             "is_default": index == 0, "livemode": False,
             "payment": {"type": "payment_intent", "payment_intent": pi} if pi else {"type": "charge", "charge": ch},
             "status": "paid", "status_transitions": {"canceled_at": None, "paid_at": int(time.time())}}
            for index, (pi, ch) in enumerate(payments)]}
    return obj


def paid_event(obj: dict, legacy: bool = False) -> dict:
    return {**event("invoice.paid", obj), "api_version": ACACIA if legacy else BASIL}
