"""Lookups: fetch from the store what an order's notification did not say (its lines, its player).

An order recorded with ``lookup`` set has no lines yet; its first attempt runs the lookup (under
the order's lease, before Kraty is ever called) and the engine then resolves the lines through
the catalog like any other order. A transient failure is retried with the attempt's backoff; a
permanent one leaves the order FULFILL_FAILED with the reason, retryable by an operator.
"""
from __future__ import annotations

from dataclasses import dataclass

from marshmallow import ValidationError

from mappers import stripe as stripe_mapper

from middleware.ledger.models import Fulfilment
from middleware.orders.price_check import Paid
from middleware.services import Services
from middleware.stores.errors import StoreError



@dataclass(frozen=True)
class Found:
    lines: list[dict]
    player_id: str | None
    paid: Paid | None = None  # what the store says was paid, for the price check (middleware/orders/price_check.py)


def _stripe_checkout(services: Services, f: Fulfilment, account: str | None) -> Found:
    config = services.catalog.game(f.namespace).stripe
    if config is None:
        raise StoreError(f"game {f.namespace} has no [stripe] configuration", transient=False,
                         code="stripe_not_configured")
    session, items = services.stripe_api.checkout_session(config.key_for(f.environment == "production"),
                                                          f.transaction_id, account)
    if session.get("payment_status") not in stripe_mapper.PAID:
        raise StoreError(f"Stripe says checkout session {f.transaction_id} is {session.get('payment_status')}, "
                         "not paid", transient=False, code="stripe_not_paid")
    try:
        lines = stripe_mapper.lines_from_line_items(items)
    except ValidationError as exc:
        raise StoreError(f"Stripe answered line items we cannot read: {exc.messages}", transient=False,
                         code="stripe_malformed") from None
    if not lines:
        raise StoreError(f"checkout session {f.transaction_id} has no line items", transient=False,
                         code="stripe_no_line_items")
    try:
        price, currency, discount = stripe_mapper.checkout_paid(stripe_mapper.checkout_session(session))
    except ValidationError:
        price = currency = discount = None
    return Found(lines, stripe_mapper.player_of(session, config.player_metadata_key),
                 Paid("checkout", stripe_mapper.SOURCE, price, currency, discount))


LOOKUPS = {stripe_mapper.LOOKUP_CHECKOUT: _stripe_checkout}


def run(services: Services, f: Fulfilment) -> Found:
    """``f.lookup`` is a LOOKUPS key, ``@<account>`` appended for a Stripe Connect account's order."""
    kind, _, account = f.lookup.partition("@")
    lookup = LOOKUPS.get(kind)
    if lookup is None:
        raise StoreError(f"unknown lookup {f.lookup!r}", transient=False, code="unknown_lookup")
    return lookup(services, f, account or None)
