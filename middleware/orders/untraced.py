"""Refunds and disputes that found no order: flagged for ops after a while, never a silent wait.

A take-back that names a payment no purchase recorded waits (``reversals``: the purchase applies it
when it comes). Past ``KB_UNTRACED_REVERSAL_SECONDS`` the reconciler marks it ``untraced``: logged as an
error, counted by ``kb_reversals_untraced`` (middleware/metrics/collectors.py), listed by
``untraced_reversals``. It still belongs to its purchase if that comes later (``reversals.link_waiting``).
"""
from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from middleware.ledger.models import Reversal
from middleware.orders.reversal_rules import PENDING, UNTRACED

log = logging.getLogger(__name__)

BATCH = 500


def flag_untraced(session: Session, received_before: datetime) -> int:
    """Mark the waiting take-backs received before ``received_before`` as untraced. Returns how many."""
    rows = list(session.scalars(select(Reversal).where(
        Reversal.state == PENDING, Reversal.fulfilment_id.is_(None), Reversal.created_at <= received_before)
        .order_by(Reversal.id).limit(BATCH)))
    for r in rows:
        r.state = UNTRACED
        r.outcome = (f"untraced: no order names {r.source} payment {r.ref}"
                     + (f" ({r.detail['trace']})" if (r.detail or {}).get("trace") else "")
                     + "; applied if its purchase comes, else review it in the store")
        log.error("%s %s %s: %s", r.source, r.kind, r.reversal_key, r.outcome)
    return len(rows)


def untraced_reversals(session: Session, limit: int = 100) -> list[dict]:
    """The flagged take-backs, oldest first, for ops."""
    rows = session.scalars(select(Reversal).where(Reversal.state == UNTRACED).order_by(Reversal.id).limit(limit))
    return [{"source": r.source, "key": r.reversal_key, "kind": r.kind, "ref": r.ref, "amount": r.amount,
             "currency": r.currency, "received_at": r.created_at, "outcome": r.outcome} for r in rows]
