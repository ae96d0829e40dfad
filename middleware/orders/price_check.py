"""What was paid against what the catalog says it costs, under the game's price policy (config/prices.py).

Runs once per order, when its lines are known: at recording (direct PaymentIntents, invoices, App Store
transactions) or right after the lines were looked up (Checkout Sessions). The catalog's price of each
line that resolved to a product, times its quantity, summed, is what must have been paid; only a
shortfall counts (tax, shipping or an overpayment never do). The store's own discount (a Stripe coupon)
counts as paid unless the game says ``discounts = "shortfall"``; an App Store offer price (``offerType``)
is Apple's signed word for a price the studio configured, so it is accepted and noted.

``enforce``: a shortfall leaves the order FULFILL_FAILED with reason ``price_mismatch``, flagged for ops
(its attention), nothing granted. ``flag``: granted and flagged. ``off``: not compared. A direct
PaymentIntent for a SKU without a declared price in the paid currency is FULFILL_FAILED ``price_unknown``
(unless ``unpriced_payment_intents = "allow"``); elsewhere an undeclared price is noted, not compared.
"""
from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from config.catalog import Game

from middleware.ledger import repository as repo
from middleware.ledger import states
from middleware.ledger.models import Fulfilment

PRICE_MISMATCH = "price_mismatch"
PRICE_UNKNOWN = "price_unknown"


@dataclass(frozen=True)
class Paid:
    """What a store says was paid for one order."""

    kind: str                    # the policy that applies: payment_intent | checkout | invoice | app_store
    store: str                   # whose store_prices apply
    amount: str | None           # major units ("4.99"), None if the store did not say
    currency: str | None         # upper-case ISO 4217
    discount: str | None = None  # taken off by the store's own discount, major units
    offer: str | None = None     # the store's offer type, if an offer price was charged


def _decimal(value: str | None) -> Decimal | None:
    try:
        return Decimal(value) if value is not None else None
    except InvalidOperation:
        return None


def _lines(f: Fulfilment) -> dict[int, tuple[str, int]]:
    """(sku, quantity) of each line that resolved to a product (its rows have a grant kind)."""
    return {item.line_no: (item.sku, item.line_quantity) for item in f.items if item.kind is not None}


def verdict(game: Game, paid: Paid, lines: list[tuple[str, int]]) -> tuple[str, str, dict]:
    """-> (ok | flag | fail | unknown, what was found, detail for the order's history)."""
    policy = game.price_policy.of(paid.kind)
    if policy == "off" or not lines:
        return "ok", "", {}
    amount, discount = _decimal(paid.amount), _decimal(paid.discount) or Decimal(0)
    detail = {"price_check": paid.kind, "policy": policy, "paid": paid.amount, "currency": paid.currency,
              **({"discount": paid.discount} if paid.discount else {}), **({"offer": paid.offer} if paid.offer else {})}
    if paid.offer:
        return "ok", f"{paid.store} offer price {paid.offer} accepted", detail
    expected, unpriced = Decimal(0), []
    for sku, quantity in lines:
        product = game.by_sku(sku)
        unit = product.price(paid.store, paid.currency) if product and paid.currency else None
        if unit is None:
            unpriced.append(sku)
        else:
            expected += unit * quantity
    if unpriced:
        what = f"no price declared in {paid.currency or 'the paid currency'} for {', '.join(unpriced)}"
        if paid.kind == "payment_intent" and game.price_policy.unpriced_payment_intents == "refuse":
            return "unknown", what, detail
        return "ok", f"not compared: {what}", detail
    detail["expected"] = str(expected)
    credited = None if amount is None else amount + (discount if game.price_policy.discounts == "honour" else 0)
    if credited is not None and credited >= expected:
        return "ok", "", detail
    said = "the store did not say what was paid" if amount is None else (
        f"paid {amount}{f' (+{discount} discount)' if discount else ''} {paid.currency}, the catalog says {expected}")
    return ("fail" if policy == "enforce" else "flag"), said, detail


def apply(f: Fulfilment, game: Game, paid: Paid | None, actor: str) -> bool:
    """Check the order's price; False when it must not be granted (it is then FULFILL_FAILED)."""
    if paid is None:
        return True
    outcome, said, detail = verdict(game, paid, list(_lines(f).values()))
    if outcome == "ok":
        if said:
            repo.note(f, actor, {**detail, "note": said})
        return True
    code = PRICE_UNKNOWN if outcome == "unknown" else PRICE_MISMATCH
    f.attention = f"{code}: {said}"
    if outcome == "flag":
        repo.note(f, actor, {**detail, "attention": f.attention})
        return True
    repo.set_state(f, states.FULFILL_FAILED, actor, {**detail, "error": code}, reason=f"{code}: {said}")
    return False


def paid_of(p) -> Paid | None:
    """What a canonical ``Purchase`` says was paid, when its mapper asks for a price check."""
    if p.price_check is None:
        return None
    return Paid(p.price_check, p.source, p.price, p.currency, p.discount, p.offer)
