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

from ..ledger.models import Fulfilment
from ..services import Services
from .errors import StoreError



@dataclass(frozen=True)
class Found:
    lines: list[dict]
    player_id: str | None


def _stripe_checkout(services: Services, f: Fulfilment) -> Found:
    config = services.catalog.game(f.namespace).stripe
    if config is None:
        raise StoreError(f"game {f.namespace} has no [stripe] configuration", transient=False,
                         code="stripe_not_configured")
    session, items = services.stripe_api.checkout_session(config.key_for(f.environment == "production"),
                                                          f.transaction_id)
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
    return Found(lines, stripe_mapper.player_of(session, config.player_metadata_key))


LOOKUPS = {stripe_mapper.LOOKUP_CHECKOUT: _stripe_checkout}


def run(services: Services, f: Fulfilment) -> Found:
    lookup = LOOKUPS.get(f.lookup)
    if lookup is None:
        raise StoreError(f"unknown lookup {f.lookup!r}", transient=False, code="unknown_lookup")
    return lookup(services, f)
