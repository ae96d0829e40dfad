"""What a SKU costs, and what a game does when a store says less was paid: the catalog's price tables.

A product may declare ``prices = { USD = "4.99", JPY = 600 }`` (major units: a decimal string, or an
integer; at most the currency's own decimals, as ``mappers.money`` counts them) and per-store overrides
``store_prices = { app_store = { USD = "5.99" } }``. A game may declare a ``[games.<ns>.price_policy]``
table (``PricePolicySchema``): per kind of payment ``enforce`` | ``flag`` | ``off``, whether a direct
PaymentIntent for a SKU without a declared price is refused, and whether the store's own discounts
(coupons) count as paid. The comparison itself is ``middleware.orders.price_check``.
"""
from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from marshmallow import ValidationError, post_load

from config.toml_schema import Choice, StrictSchema, Value
from mappers.money import exponent_of

__all__ = ["DEFAULT_POLICY", "KINDS", "POLICIES", "PricePolicy", "PricePolicySchema", "Prices", "StorePrices",
           "price_in"]

POLICIES = ("enforce", "flag", "off")
KINDS = ("payment_intent", "checkout", "invoice", "app_store")
STORES = ("google_play", "app_store", "stripe")
MAX_PRICE = Decimal(10) ** 12


@dataclass(frozen=True)
class PricePolicy:
    """How one game compares what a store says was paid with the catalog's prices."""

    payment_intent: str = "enforce"  # direct PaymentIntents: their metadata is anyone's word
    checkout: str = "flag"           # Checkout Sessions: the studio's own Stripe prices were charged
    invoice: str = "flag"            # subscription invoices: likewise
    app_store: str = "flag"          # App Store transactions: Apple's signed price
    unpriced_payment_intents: str = "refuse"  # "allow": a direct PaymentIntent for an unpriced SKU is granted
    discounts: str = "honour"        # "honour": a store's own discount counts as paid; "shortfall": it does not

    def of(self, kind: str) -> str:
        return getattr(self, kind) if kind in KINDS else "off"


DEFAULT_POLICY = PricePolicy()


def _amount(currency: str, raw) -> Decimal:
    if isinstance(raw, bool) or not isinstance(raw, (str, int)):
        raise ValueError('must be a decimal string ("4.99") or an integer')
    try:
        value = Decimal(raw.strip() if isinstance(raw, str) else raw)
    except InvalidOperation:
        raise ValueError('must be a decimal string ("4.99") or an integer') from None
    if not value.is_finite() or value < 0 or value >= MAX_PRICE:
        raise ValueError("must be a price from 0 up to 10^12")
    if -value.as_tuple().exponent > exponent_of(currency):
        raise ValueError(f"{currency} has {exponent_of(currency)} decimals")
    return value


def _table(value) -> dict[str, Decimal]:
    """``{USD = "4.99", ...}`` -> ``{"USD": Decimal("4.99")}``; the codes upper-cased."""
    if not isinstance(value, dict) or not value:
        raise ValidationError("must be a non-empty table of currency = price")
    errors, out = {}, {}
    for code, raw in value.items():
        if not (isinstance(code, str) and len(code) == 3 and code.isascii() and code.isalpha()):
            errors[code] = ["not an ISO 4217 currency code"]
            continue
        try:
            out[code.upper()] = _amount(code.upper(), raw)
        except ValueError as exc:
            errors[code] = [str(exc)]
    if errors:
        raise ValidationError(errors)
    return out


class Prices(Value):
    """A product's ``prices`` table."""

    def _deserialize(self, value, attr, data, **kwargs):
        return _table(value)


class StorePrices(Value):
    """A product's ``store_prices``: ``{store: {currency: price}}``."""

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, dict):
            raise ValidationError("must be a table of store = { currency = price }")
        errors, out = {}, {}
        for store, table in value.items():
            if store not in STORES:
                errors[store] = [f"unknown store (known: {', '.join(STORES)})"]
                continue
            try:
                out[store] = _table(table)
            except ValidationError as exc:
                errors[store] = exc.messages
        if errors:
            raise ValidationError(errors)
        return out


def price_in(prices, store: str, currency: str) -> Decimal | None:
    """One unit's price in ``currency`` at ``store`` (its override first), or None if undeclared.
    ``prices``: ``{"": {currency: price}, store: {...}}`` as ``Product.prices`` holds it."""
    for key in (store, ""):
        table = prices.get(key)
        if table is not None and currency in table:
            return table[currency]
    return None


class PricePolicySchema(StrictSchema):
    """``[games.<ns>.price_policy]`` -> ``PricePolicy``; every key optional."""

    payment_intent = Choice(POLICIES, load_default=DEFAULT_POLICY.payment_intent)
    checkout = Choice(POLICIES, load_default=DEFAULT_POLICY.checkout)
    invoice = Choice(POLICIES, load_default=DEFAULT_POLICY.invoice)
    app_store = Choice(POLICIES, load_default=DEFAULT_POLICY.app_store)
    unpriced_payment_intents = Choice(("refuse", "allow"), load_default=DEFAULT_POLICY.unpriced_payment_intents)
    discounts = Choice(("honour", "shortfall"), load_default=DEFAULT_POLICY.discounts)

    @post_load
    def _build(self, data, **kwargs) -> PricePolicy:
        return PricePolicy(**data)
