"""Stripe subscription invoices (``invoice.paid``) -> canonical purchases. Pure: no I/O.

Stripe bills a subscription per period with an invoice; each paid invoice is one order keyed by the
invoice id, its lines the subscription's prices (``pricing.price_details`` from API version 2025-03-31,
``price`` before), resolved through the catalog's ``store_ids.stripe`` like Checkout lines. Credit lines
(negative amounts: the unused time of a plan left mid-period) grant nothing. An invoice that charged
nothing and had no discount is a trial start (or a free period): the handler grants only the products'
``trial_sku``. The payment is in ``payments`` (InvoicePayment objects) from 2025-03-31, in top-level
``payment_intent``/``charge`` before; the handler fetches ``payments`` when the event lacks both.
"""
from __future__ import annotations

from marshmallow import fields, validate

from mappers.canonical import Purchase
from mappers.money import from_minor, price_fields
from mappers.stripe import (NAMESPACE_KEY, SOURCE, Event, _id, _Lenient, _metadata_text, _money,
                            line_of, player_of, ref_id)

BILLING_REASONS = ("subscription_create", "subscription_cycle", "subscription_update")


class InvoiceLineSchema(_Lenient):
    id = fields.String(load_default=None)
    amount = fields.Integer(strict=True, load_default=0, allow_none=True)
    quantity = fields.Integer(load_default=None, allow_none=True, strict=True, validate=validate.Range(1, 2_147_483_647))
    description = fields.String(load_default=None, allow_none=True)
    pricing = fields.Dict(load_default=None, allow_none=True)
    price = fields.Dict(load_default=None, allow_none=True)
    period = fields.Dict(load_default=None, allow_none=True)


class InvoiceSchema(_Lenient):
    id = _id()
    billing_reason = fields.String(load_default=None, allow_none=True)
    amount_paid = _money()
    total = fields.Integer(strict=True, load_default=None, allow_none=True)
    currency = fields.String(load_default=None, allow_none=True)
    starting_balance = fields.Integer(strict=True, load_default=0, allow_none=True)
    ending_balance = fields.Integer(strict=True, load_default=None, allow_none=True)
    total_discount_amounts = fields.List(fields.Dict(), load_default=None, allow_none=True)
    metadata = fields.Dict(load_default=dict, allow_none=True)
    parent = fields.Dict(load_default=None, allow_none=True)
    subscription_details = fields.Dict(load_default=None, allow_none=True)  # before 2025-03-31
    payment_intent = fields.Raw(load_default=None, allow_none=True)         # before 2025-03-31
    charge = fields.Raw(load_default=None, allow_none=True)                 # before 2025-03-31
    payments = fields.Dict(load_default=None, allow_none=True)
    lines = fields.Dict(required=True)


INVOICE, INVOICE_LINES = InvoiceSchema(), InvoiceLineSchema(many=True)


def invoice(obj: dict) -> dict:
    """The invoice, its lines loaded (ValidationError if it is not one we can read)."""
    data = INVOICE.load(obj)
    data["lines_loaded"] = INVOICE_LINES.load(data["lines"].get("data") or [])
    return data


def with_lines(inv: dict, more: list[dict]) -> dict:
    """The invoice with ``more`` lines (the pages after the event's, fetched through Stripe's API) loaded after
    its own (ValidationError if one is not a line we can read)."""
    lines = {**inv["lines"], "data": [*(inv["lines"].get("data") or []), *more], "has_more": False}
    return {**inv, "lines": lines, "lines_loaded": [*inv["lines_loaded"], *INVOICE_LINES.load(more)]}


def _price_of(line: dict) -> dict | None:
    """{id, product, lookup_key} of a line's price, in either API version's shape; None if it has none."""
    details = (line["pricing"] or {}).get("price_details") if isinstance(line["pricing"], dict) else None
    if isinstance(details, dict) and details.get("price"):
        return {"id": ref_id(details["price"]), "product": details.get("product"), "lookup_key": None}
    price = line["price"]
    if isinstance(price, dict) and price.get("id"):
        return {"id": price["id"], "product": price.get("product"), "lookup_key": price.get("lookup_key")}
    return None


def store_lines(inv: dict) -> list[dict]:
    """Order lines of the invoice's charged lines (credit lines, with negative amounts, skipped)."""
    return [line_of(line["id"], _price_of(line), line["quantity"], line["description"])
            for line in inv["lines_loaded"] if (line["amount"] or 0) >= 0]


def discount(inv: dict) -> int:
    return sum(d.get("amount") or 0 for d in inv["total_discount_amounts"] or () if isinstance(d.get("amount"), int))


def is_trial(inv: dict) -> bool:
    """Nothing charged and nothing discounted: a trial start (or a free period)."""
    total = inv["total"] if inv["total"] is not None else inv["amount_paid"]
    return not total and not discount(inv)


def paid_minor(inv: dict) -> int | None:
    """What was paid: ``amount_paid`` and the customer's credit balance the invoice used."""
    if inv["amount_paid"] is None:
        return None
    used = (inv["ending_balance"] or 0) - (inv["starting_balance"] or 0) if inv["ending_balance"] is not None else 0
    return inv["amount_paid"] + max(used, 0)


def _subscription_metadata(inv: dict) -> dict:
    details = ((inv["parent"] or {}).get("subscription_details") or inv["subscription_details"] or {})
    return details.get("metadata") or {} if isinstance(details, dict) else {}


def invoice_namespace(inv: dict) -> str | None:
    return _metadata_text(_subscription_metadata(inv), NAMESPACE_KEY) or _metadata_text(inv["metadata"] or {},
                                                                                         NAMESPACE_KEY)


def invoice_player(inv: dict, metadata_key: str) -> str | None:
    """The subscription's metadata (``subscription_data.metadata`` at Checkout), else the invoice's."""
    return (player_of({"metadata": _subscription_metadata(inv)}, metadata_key)
            or player_of({"metadata": inv["metadata"] or {}}, metadata_key))


def paid_pairs(objects: list) -> list[tuple[str | None, str | None]]:
    """(payment_intent, charge) of each InvoicePayment whose ``status`` is ``paid``."""
    return [(ref_id(p["payment"].get("payment_intent")), ref_id(p["payment"].get("charge")))
            for p in objects if isinstance(p, dict) and p.get("status") == "paid" and isinstance(p.get("payment"), dict)]


def payments(inv: dict) -> list[tuple[str | None, str | None]] | None:
    """(payment_intent, charge) of each paid InvoicePayment; the top-level pair of older versions; None when the
    event carries neither (``payments`` is not always included): then it is fetched."""
    if inv["payments"] is not None:
        return paid_pairs(inv["payments"].get("data") or [])
    if inv["payment_intent"] is not None or inv["charge"] is not None:
        return [(ref_id(inv["payment_intent"]), ref_id(inv["charge"]))]
    return None


def purchase_from_invoice(inv: dict, event: Event, metadata_key: str, lines: list[dict],
                          paid: list[tuple[str | None, str | None]], trial: bool) -> Purchase:
    """One paid period: ``lines`` (the trial's when ``trial``), ``paid`` its (payment_intent, charge) pairs,
    charges found through the API included. Its price is checked under the game's ``invoice`` policy."""
    intents = [pi for pi, _ in paid if pi]
    charges = [charge for _, charge in paid if charge]
    payment_ref = (intents or charges or [None])[0]
    extra = tuple(dict.fromkeys(ref for ref in [*intents, *charges, inv["id"]] if ref and ref != payment_ref))
    amount = paid_minor(inv)
    off = discount(inv)
    periods = [line["period"] for line in inv["lines_loaded"] if line["period"]]
    return Purchase(source=SOURCE, transaction_id=inv["id"], player_id=invoice_player(inv, metadata_key),
                    environment=event.environment, lines=lines, payment_ref=payment_ref, extra_refs=extra,
                    price_check=None if trial else "invoice",
                    discount=from_minor(off, inv["currency"])[0] if off else None,
                    **price_fields(from_minor(amount, inv["currency"])),
                    detail={"stripe_event": event.id, "invoice": inv["id"], "billing_reason": inv["billing_reason"],
                            "trial": trial, "periods": periods[:10], "amount": amount, "currency": inv["currency"],
                            "player_hint": f"no metadata[{metadata_key}] on the subscription or the invoice"})
