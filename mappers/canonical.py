"""The canonical objects every store's mapper produces: a purchase to fulfil, a reversal to apply."""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Purchase:
    source: str                      # stripe | app_store | google_play
    transaction_id: str              # the fulfilment key (a Checkout Session id, a PaymentIntent id...)
    player_id: str | None            # None: the order is recorded as failed with reason player_unresolved
    environment: str                 # production | sandbox
    lines: list[dict]                # store lines (orders.store_line); empty while ``lookup`` is set
    lookup: str | None = None        # what to fetch from the store before the lines are known
    payment_ref: str | None = None   # the payment refunds and disputes will name (a PaymentIntent id)
    # further store ids a refund or dispute may name instead of ``payment_ref`` (Stripe charge ids, an invoice id)
    extra_refs: tuple[str, ...] = ()
    detail: dict = field(default_factory=dict)
    # (kind, value) ids a studio's receipt may link to a player (player_links), most specific first;
    # the first is the purchase's own id. ``player_key``: the id a held order is found by when linked.
    player_keys: tuple[tuple[str, str], ...] = ()
    player_key: str | None = None
    followup: str | None = None      # what the store must be told once granted (workers/followups.py)
    price: str | None = None         # what was paid, in major units ("4.99"), where the store says (mappers/money.py)
    currency: str | None = None      # its ISO 4217 code ("USD")
    # which price policy compares ``price`` with the catalog (config/prices.py KINDS); None: not compared
    price_check: str | None = None
    discount: str | None = None      # what the store's own discount (a coupon) took off, major units
    offer: str | None = None         # the store's own offer price applied (App Store offerType): accepted as paid


@dataclass(frozen=True)
class Reversal:
    source: str
    key: str                         # unique per source: each refund / dispute outcome takes effect once
    ref: str                         # the payment it concerns (Purchase.payment_ref)
    kind: str                        # refund | dispute_opened | dispute_lost | dispute_won
    amount: int | None = None        # refunded so far (cumulative) or disputed, in minor units
    total: int | None = None         # what was paid
    currency: str | None = None
    detail: dict = field(default_factory=dict)
    store_ref: str | None = None     # the store's own id of the take-back (a refund re_…, a dispute dp_…)
