"""The backfill's metrics: how many events each run found that the bridge had never recorded (the gap)."""
from __future__ import annotations

from prometheus_client import Counter, Gauge

RUNS = Counter("kb_backfill_runs", "Backfill runs per store (ok, or error: the store's API failed)", ["store", "outcome"])
GAP_EVENTS = Counter("kb_backfill_gap_events", "Events a backfill found in a store's history that the bridge had "
                     "never recorded (recorded then): a webhook outage shows here", ["store"])
LAST_GAP = Gauge("kb_backfill_last_gap_events", "The gap of the last finished backfill run per store",
                 ["store"], multiprocess_mode="mostrecent")


def backfill_run(store: str, gap: int | None) -> None:
    """One run of ``store``'s backfill finished (``gap`` None: it failed)."""
    RUNS.labels(store, "error" if gap is None else "ok").inc()
    if gap is not None:
        GAP_EVENTS.labels(store).inc(gap)
        LAST_GAP.labels(store).set(gap)
