"""The reconciler: re-enqueue active orders that nobody is working on, so nothing is lost.

A killed worker, a flushed Redis or a retry that could not be enqueued all leave an order in an
active state with a free lease and a due time in the past; this finds and re-enqueues them.
"""
from __future__ import annotations

import logging
from datetime import timedelta

from middleware.ledger import repository as repo
from middleware.ledger.models import utcnow
from middleware.services import Services, services

from . import runtime
from .queues import enqueue_attempt

log = logging.getLogger(__name__)


def reconcile_now(svc: Services, stale_seconds: float | None = None) -> dict:
    """One pass; returns counts. Raises RedisError if Redis is unreachable."""
    stale = svc.settings.reconcile_stale_seconds if stale_seconds is None else stale_seconds
    now = utcnow()
    with svc.session() as session:
        rows = [(f.id, f.state, f.attempts) for f in repo.stalled(session, now - timedelta(seconds=stale), now)]
    enqueued = 0
    for fulfilment_id, state, attempts in rows:
        if enqueue_attempt(svc.redis, fulfilment_id, state, attempts):
            enqueued += 1
    if rows:
        log.info("reconciler: %d stalled, %d enqueued", len(rows), enqueued)
    return {"stalled": len(rows), "enqueued": enqueued}


def reconcile() -> dict:
    with runtime.app().app_context():
        return reconcile_now(services())
