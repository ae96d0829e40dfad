"""The reconciler job: one pass of ``middleware/orders/reconciler.py``, then the other periodic work (sink
deliveries whose job was lost, Google Play's voided purchases, stores' histories, scrubbing erased players)."""
from __future__ import annotations

from middleware.orders.reconciler import reconcile_now, scrub_deletions
from middleware.services import Services
from middleware.sinks.delivery import reconcile_deliveries
from middleware.stores.backfill import run_due as backfill_due
from middleware.stores.google_play_voided import poll_due

from workers import runtime


@runtime.job
def reconcile(svc: Services) -> dict:
    counts = reconcile_now(svc)
    counts["deliveries"] = reconcile_deliveries(svc)
    counts["voided_polls"] = poll_due(svc)
    counts["backfill"] = backfill_due(svc)
    counts["deletions_scrubbed"] = scrub_deletions(svc)
    return counts
