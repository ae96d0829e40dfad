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

from .changes import apply_partial_revoke, apply_regrant, apply_revoke, revoked_amounts
from .ledger import repository as repo
from .ledger import states
from .ledger.models import Fulfilment, Reversal, utcnow

log = logging.getLogger(__name__)

REFUND = "refund"
DISPUTE_OPENED = "dispute_opened"
DISPUTE_LOST = "dispute_lost"
DISPUTE_WON = "dispute_won"
REFUND_REVERSED = "refund_reversed"  # the store gave the money back to the studio: grant again
KINDS = (REFUND, DISPUTE_OPENED, DISPUTE_LOST, DISPUTE_WON, REFUND_REVERSED)

PENDING, APPLIED, IGNORED = "pending", "applied", "ignored"


@dataclass(frozen=True)
class Policy:
    partial_refunds: str = "flag"        # flag | proportional
    disputes: str = "revoke_on_open"     # revoke_on_open | revoke_when_lost


def policy(game: Game, source: str) -> Policy:
    if source == "google_play":  # quantity-based refunds void whole units: take back exactly those units
        return Policy(partial_refunds="proportional")
    config = getattr(game, source, None) if source in ("stripe", "app_store") else None
    if config is None:
        return Policy()
    return Policy(config.partial_refunds, getattr(config, "disputes", Policy.disputes))


def dispute_group(key: str) -> str:
    """``dispute:<id>:<what>`` -> ``dispute:<id>:``: the reversals of one dispute."""
    return key.rsplit(":", 1)[0] + ":"


def _flag(f: Fulfilment, actor: str, attention: str, detail: dict) -> str:
    f.attention = attention
    repo.note(f, actor, {**detail, "attention": attention})
    return "flagged for review"


def _describe(r: Reversal) -> str:
    """What the store said about a refund, for the order's reason and history (only what is known)."""
    if (r.detail or {}).get("summary"):
        return r.detail["summary"]
    if r.amount is None or r.total is None:
        return f"{r.source} refund"
    return f"{r.source} refund of {r.amount} of {r.total} {r.currency or ''}".rstrip()


def _refund(f: Fulfilment, r: Reversal, rules: Policy, actor: str) -> str | None:
    what = _describe(r)
    if r.total is None or r.amount is None or r.amount >= r.total:
        return "revoked" if apply_revoke(f, actor, what) else "already revoked"
    if f.state in (states.REVOKED, states.REVOKE_FAILED):
        return f"nothing to do: the order is {f.state}"
    if rules.partial_refunds == "proportional" and f.state in (states.RECEIVED, states.FULFILLING,
                                                                 states.FULFILLED, states.REVOKING):
        result = apply_partial_revoke(f, actor, r.amount, r.total, what)
        return None if result == "deferred" else f"partial take-back: {result}"
    said = (r.detail or {}).get("summary") or f"{r.amount} of {r.total} {r.currency or ''} refunded"
    return _flag(f, actor, f"partial refund: {said} (policy {rules.partial_refunds}, order {f.state}); "
                           "review what to take back",
                 {"reversal": r.reversal_key})


def _siblings(session: Session, r: Reversal) -> list[Reversal]:
    group = dispute_group(r.reversal_key)
    return list(session.scalars(select(Reversal).where(
        Reversal.source == r.source, Reversal.ref == r.ref, Reversal.id != r.id,
        Reversal.reversal_key.startswith(group, autoescape=True))))


def _dispute_revoke(f: Fulfilment, r: Reversal, actor: str, what: str) -> str:
    before = revoked_amounts(f)
    if not apply_revoke(f, actor, what):
        return "already revoked"
    r.detail = {**(r.detail or {}), "revoked": True, "before": before}
    return "revoked"


def _dispute(session: Session, f: Fulfilment, r: Reversal, rules: Policy, actor: str) -> str | None:
    siblings = _siblings(session, r)
    took_back = next((s for s in siblings if s.state == APPLIED and (s.detail or {}).get("revoked")), None)
    what = f"{r.source} dispute {r.kind.removeprefix('dispute_')}"
    if r.kind == DISPUTE_OPENED:
        if any(s.kind in (DISPUTE_WON, DISPUTE_LOST) for s in siblings):
            return "ignored: the dispute is already closed"
        if rules.disputes == "revoke_on_open":
            return _dispute_revoke(f, r, actor, what)
        return _flag(f, actor, "dispute opened: waiting for its outcome (policy revoke_when_lost)",
                     {"reversal": r.reversal_key})
    if r.kind == DISPUTE_LOST:
        f.attention = None if f.attention and f.attention.startswith("dispute opened") else f.attention
        if took_back is not None:
            return "already revoked when the dispute opened"
        return _dispute_revoke(f, r, actor, what)
    # won
    if f.attention and f.attention.startswith("dispute opened"):
        f.attention = None
    if took_back is None:
        return "nothing to give back: the dispute took nothing"
    if f.state == states.REVOKING:
        return None  # wait until the take-back has settled, then give back
    if f.state != states.REVOKED:
        return _flag(f, actor, f"dispute won, but the order is {f.state}: review what the player holds",
                     {"reversal": r.reversal_key})
    apply_regrant(f, actor, took_back.detail.get("before") or {}, what)
    return "given back"


def _refund_reversed(f: Fulfilment, r: Reversal, actor: str) -> str | None:
    """Give back everything the order's refund took (a new cycle: new idempotency keys)."""
    if f.state == states.REVOKING:
        return None  # the take-back is still settling
    if f.state != states.REVOKED:
        return f"nothing to give back: the order is {f.state}"
    apply_regrant(f, actor, {}, f"{r.source} refund reversed")
    return "given back"


def apply_pending(session: Session, f: Fulfilment, game: Game, actor: str) -> int:
    """Apply the order's pending reversals in arrival order (caller holds the lease). Returns how many."""
    rows = list(session.scalars(select(Reversal).where(Reversal.fulfilment_id == f.id, Reversal.state == PENDING)
                                .order_by(Reversal.id)))
    applied = 0
    for r in rows:
        rules = policy(game, r.source)
        if r.kind == REFUND:
            outcome = _refund(f, r, rules, actor)
        elif r.kind == REFUND_REVERSED:
            outcome = _refund_reversed(f, r, actor)
        else:
            outcome = _dispute(session, f, r, rules, actor)
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
    return len(rows)
