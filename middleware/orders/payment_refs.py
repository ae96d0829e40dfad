"""The store ids that name a payment — and so its order: ``payment_refs`` rows, one per (source, id).

A purchase names its payment (a Stripe PaymentIntent id) and may name more ids that a refund or
dispute can name instead (``Purchase.extra_refs``: Stripe charge ids, an invoice id). Each becomes a
row pointing at the order, so a take-back that names only a charge finds its order; a charge
learned later (from Stripe's API, when a take-back named only it) is added the same way.
"""
from __future__ import annotations

import logging

from sqlalchemy import select
from sqlalchemy.orm import Session

from middleware.ledger import repository as repo
from middleware.ledger.models import PaymentRef, utcnow
from middleware.orders.reversals import link_waiting

log = logging.getLogger(__name__)


def lock(session: Session, source: str, ref: str) -> PaymentRef:
    """The payment's row, inserted if absent, locked until the transaction ends."""
    insert = repo.dialect_insert(session)
    session.execute(insert(PaymentRef).values(source=source, ref=ref, created_at=utcnow())
                    .on_conflict_do_nothing(index_elements=["source", "ref"]))
    return session.scalars(select(PaymentRef).where(PaymentRef.source == source, PaymentRef.ref == ref)
                           .with_for_update()).one()


def order_of(session: Session, source: str, ref: str) -> str | None:
    """The order a store id names, if the ledger knows it (no lock)."""
    return session.scalar(select(PaymentRef.fulfilment_id).where(PaymentRef.source == source, PaymentRef.ref == ref))


def attach(session: Session, source: str, refs, fulfilment_id: str) -> int:
    """Point each of ``refs`` at the order (an id already naming another order is left as it is, logged),
    and give the order the take-backs that were waiting under those ids. Returns how many were linked."""
    linked = 0
    for ref in dict.fromkeys(r for r in refs if r):
        row = lock(session, source, ref)
        if row.fulfilment_id is None:
            row.fulfilment_id = fulfilment_id
        elif row.fulfilment_id != fulfilment_id:
            log.warning("%s id %s names order %s, not %s: left as it is", source, ref, row.fulfilment_id,
                        fulfilment_id)
            continue
        linked += link_waiting(session, source, ref, fulfilment_id)
    return linked
