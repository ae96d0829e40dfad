"""Refunds and disputes a store reported, applied to the order they concern — each exactly once.

A store's take-back names the payment (a Stripe PaymentIntent...), not our order: ``PaymentRef``
maps it. Each reversal is stored once (unique key), ``pending`` until it is applied under the
order's lease; one that arrives before its purchase waits, and the purchase applies it when it is
recorded, so a refunded order is never granted at all.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from config.catalog import Game
from mappers import stripe_reversals as sr

from middleware.orders import reversal_rules as rules_of
from middleware.orders.changes import apply_regrant
from middleware.ledger import repository as repo
from middleware.ledger import states
from middleware.ledger.models import Fulfilment, Reversal, utcnow
from middleware.orders.reversal_rules import APPLIED, IGNORED, PENDING, UNTRACED  # noqa: F401  (the rows' states, used by callers)

log = logging.getLogger(__name__)

REFUND = sr.REFUND
REFUND_REVERSED = "refund_reversed"  # the store gave the money back to the studio: grant again
# refund_failed, dispute_inquiry|opened|lost|won: Stripe's statuses (mappers/stripe_reversals.py)
KINDS = (REFUND, sr.REFUND_FAILED, sr.DISPUTE_INQUIRY, sr.DISPUTE_OPENED, sr.DISPUTE_LOST, sr.DISPUTE_WON,
         REFUND_REVERSED)


@dataclass(frozen=True)
class Policy:
    partial_refunds: str = "flag"        # flag | proportional
    disputes: str = "revoke_on_open"     # revoke_on_open | revoke_when_lost
    inquiries: str = "flag"              # flag | revoke


def policy(game: Game, source: str) -> Policy:
    if source == "google_play":  # quantity-based refunds void whole units: take back exactly those units
        return Policy(partial_refunds="proportional")
    if source == "stripe" and game.stripe is not None:
        return Policy(game.stripe.partial_refunds, game.stripe.disputes, game.stripe.inquiries)
    if source == "app_store" and game.app_store is not None:  # Apple has no disputes: its refunds' policy only
        return Policy(partial_refunds=game.app_store.partial_refunds)
    return Policy()


def _refund_reversed(f: Fulfilment, r: Reversal, actor: str) -> str | None:
    """Give back everything the order's refund took (a new cycle: new idempotency keys)."""
    if f.state == states.REVOKING:
        return None  # the take-back is still settling
    if f.state != states.REVOKED:
        return f"nothing to give back: the order is {f.state}"
    apply_regrant(f, actor, {}, f"{r.source} refund reversed")
    return "given back"


APPLY = {REFUND: rules_of.refund, sr.REFUND_FAILED: rules_of.refund_failed, sr.DISPUTE_INQUIRY: rules_of.dispute,
         sr.DISPUTE_OPENED: rules_of.dispute, sr.DISPUTE_LOST: rules_of.dispute, sr.DISPUTE_WON: rules_of.dispute}


def apply_pending(session: Session, f: Fulfilment, game: Game, actor: str) -> int:
    """Apply the order's pending reversals in arrival order (caller holds the lease). Returns how many."""
    rows = list(session.scalars(select(Reversal).where(Reversal.fulfilment_id == f.id, Reversal.state == PENDING)
                                .order_by(Reversal.id)))
    applied = 0
    for r in rows:
        rules = policy(game, r.source)
        if r.kind == REFUND_REVERSED:
            outcome = _refund_reversed(f, r, actor)
        else:
            outcome = APPLY[r.kind](session, f, r, rules, actor)
        if outcome is None:
            continue  # not yet: it stays pending
        r.state = IGNORED if outcome.startswith(("ignored", "nothing", "already")) else APPLIED
        r.outcome, r.applied_at = outcome, utcnow()
        repo.note(f, actor, {"reversal": r.reversal_key, "kind": r.kind, "outcome": outcome})
        log.info("order %s: %s %s -> %s", f.id, r.kind, r.reversal_key, outcome)
        applied += 1
    return applied


def record(session: Session, r: Reversal) -> bool:
    """Insert a reversal unless its key is already there (then False: it takes effect only once)."""
    try:
        with session.begin_nested():
            session.add(r)
    except IntegrityError:
        return False
    return True


def link_waiting(session: Session, source: str, ref: str, fulfilment_id: str) -> int:
    """Reversals that arrived before the purchase now belong to its order."""
    rows = list(session.scalars(select(Reversal).where(Reversal.source == source, Reversal.ref == ref,
                                                       Reversal.fulfilment_id.is_(None))))
    for r in rows:
        r.fulfilment_id = fulfilment_id
        if r.state == UNTRACED:  # flagged while it waited: its order has come
            r.state = PENDING
    return len(rows)
