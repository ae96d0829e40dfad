"""The reconciler's pass: re-enqueue active orders, store events, refunds waiting for a busy order and store
follow-ups that nobody is working on, so nothing is lost.

A killed worker, a flushed Redis or a retry that could not be enqueued all leave an order in an
active state with a free lease and a due time in the past; this finds and re-enqueues them.
The job that runs it on a schedule is ``workers/reconcile.py``.
"""
from __future__ import annotations

import logging
from datetime import timedelta

from sqlalchemy import func, select, update

from middleware.ledger import repository as repo
from middleware.ledger.models import Fulfilment, InboundEvent, Reversal, utcnow
from middleware.ops import privacy
from middleware.orders import retry, untraced
from middleware.services import Services

BATCH = 500
MAX_PAGES = 40   # stalled orders (and store events) looked at per pass: 20,000

log = logging.getLogger(__name__)


def reconcile_now(svc: Services, stale_seconds: float | None = None) -> dict:
    """One pass; returns counts. Raises RedisError if Redis is unreachable."""
    stale = svc.settings.reconcile_stale_seconds if stale_seconds is None else stale_seconds
    released = svc.jobs.move_overdue()  # delayed jobs RQ's scheduler did not move in time
    relayed = svc.jobs.relay_outbox()  # the relay's fallback: an outbox left behind (workers/relay.py)
    now = utcnow()
    rows = _stalled_orders(svc, now - timedelta(seconds=stale), now)
    enqueued = 0
    for fulfilment_id, state, attempts in rows:
        if svc.jobs.attempt(fulfilment_id, state, attempts):
            enqueued += 1
    events, failed = _stalled_events(svc, now - timedelta(seconds=stale))
    for source, event_id, attempts in events:
        svc.jobs.event(source, event_id, attempts)
    waiting = _waiting_reversals(svc, now - timedelta(seconds=stale))
    for fulfilment_id, last in waiting:
        svc.jobs.reverse(fulfilment_id, last)
    followups = _due_followups(svc, now - timedelta(seconds=stale))
    with svc.session() as session:  # refunds and disputes that found no order: flagged for ops, counted
        flagged = untraced.flag_untraced(session, now - timedelta(seconds=svc.settings.untraced_reversal_seconds))
        session.commit()
    for fulfilment_id, attempts in followups:
        svc.jobs.followup(fulfilment_id, attempts)
    if rows or events or failed or waiting or followups or released or flagged or relayed:
        log.info("reconciler: %d outbox jobs relayed, %d overdue delayed jobs queued, %d stalled orders (%d enqueued), "
                 "%d events re-enqueued, %d given up, %d orders with waiting refunds/disputes, %d refunds/disputes "
                 "untraced", relayed, released, len(rows), enqueued, len(events), failed, len(waiting), flagged)
    return {"relayed": relayed, "released": released, "stalled": len(rows), "enqueued": enqueued, "events": len(events),
            "events_failed": failed, "reversals": len(waiting), "followups": len(followups), "untraced": flagged}


def _stalled_orders(svc: Services, stale_before, now) -> list[tuple[str, str, int]]:
    """Every stalled order (page by page, up to MAX_PAGES): after a flushed Redis they can be thousands."""
    rows, after = [], None
    with svc.session() as session:
        for _ in range(MAX_PAGES):
            page = repo.stalled(session, stale_before, now, limit=BATCH, after=after)
            rows += [(f.id, f.state, f.attempts) for f in page]
            if len(page) < BATCH:
                break
            last = page[-1]
            after = (last.next_attempt_at or last.updated_at, last.id)
    return rows


def _stalled_events(svc: Services, stale_before) -> tuple[list[tuple[str, int, int]], int]:
    """Recorded store events whose job did not finish: re-enqueue, or give up after the attempt limit."""
    last_try = func.coalesce(InboundEvent.attempted_at, InboundEvent.received_at)
    limit = retry.for_store_events(svc.settings).max_attempts
    with svc.session() as session:
        failed = session.execute(
            update(InboundEvent).where(InboundEvent.outcome == "pending", last_try <= stale_before,
                                       InboundEvent.attempts >= limit)
            .values(outcome="failed", detail="gave up after the attempt limit; see the worker logs")).rowcount
        rows = session.execute(select(InboundEvent.source, InboundEvent.id, InboundEvent.attempts)
                               .where(InboundEvent.outcome == "pending", last_try <= stale_before)
                               .order_by(InboundEvent.id).limit(BATCH * MAX_PAGES)).all()
        session.commit()
    if failed:
        log.error("reconciler: %d store events failed after %d attempts", failed, limit)
    return [tuple(row) for row in rows], failed


def _due_followups(svc: Services, stale_before) -> list[tuple[str, int]]:
    """Granted orders whose store was not told yet and whose next try is overdue (a lost job)."""
    with svc.session() as session:
        return [tuple(row) for row in session.execute(
            select(Fulfilment.id, Fulfilment.followup_attempts)
            .where(Fulfilment.followup_state == "pending", Fulfilment.followup_at <= stale_before)
            .limit(BATCH)).all()]


def _waiting_reversals(svc: Services, stale_before) -> list[tuple[str, int]]:
    """Orders with a refund or dispute still to apply (their order was busy when it came)."""
    with svc.session() as session:
        return [tuple(row) for row in session.execute(
            select(Reversal.fulfilment_id, func.max(Reversal.id))
            .where(Reversal.state == "pending", Reversal.fulfilment_id.is_not(None), Reversal.created_at <= stale_before)
            .group_by(Reversal.fulfilment_id).limit(BATCH)).all()]


def scrub_deletions(svc: Services) -> int:
    """Anonymise the player.deleted events every sink has received (middleware/ops/privacy.py)."""
    with svc.session() as session:
        done = privacy.scrub_delivered_deletions(session)
        session.commit()
    return done
