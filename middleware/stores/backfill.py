"""The backfill: ask each store what it sent and record what the bridge never saw.

One pass per store — ``app-store`` (notification history), ``stripe`` (events list), ``google-play``
(the voided-purchases poll, as the reconciler already runs it) — for every game the store is set up
for, over a time window. Everything found goes down the live webhook's path (``inbound.record_event``),
deduplicated by the store's event id, so a second run, or a run alongside live traffic, changes nothing.
A run's gap (events found that had never been recorded) is logged and counted in
``kb_backfill_gap_events_total`` / ``kb_backfill_last_gap_events``.

Run by ``flask backfill STORE --since`` and, every ``KB_BACKFILL_INTERVAL_SECONDS`` (0: never), by the
reconciler, each store's pass resuming where its last one ended (with an overlap).
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext

from workers.google_voided import poll_game

from middleware.ledger.models import StoreCursor, utcnow
from middleware.metrics.backfill import backfill_run
from middleware.services import Services
from middleware.stores import app_store_backfill, stripe_backfill
from middleware.stores.errors import StoreError

log = logging.getLogger(__name__)

DAY_MS = 86_400_000
OVERLAP_MS = 3_600_000  # a periodic pass reads the last hour of the previous window again
STORES = {
    "app-store": (app_store_backfill, lambda catalog: [g for g in catalog.app_store_games() if g.app_store.api]),
    "stripe": (stripe_backfill, lambda catalog: catalog.stripe_games()),
}
GOOGLE = "google-play"
NAMES = (*STORES, GOOGLE)

Progress = Callable[[Sequence, str], AbstractContextManager]


def _no_progress(items: Sequence, label: str) -> AbstractContextManager:
    return nullcontext(items)


def oldest_ms(store: str, now_ms: int) -> int:
    days = {"app-store": app_store_backfill.HISTORY_DAYS}.get(store, stripe_backfill.HISTORY_DAYS)
    return now_ms - days * DAY_MS + 60_000


def run(svc: Services, store: str, since_ms: int, until_ms: int | None = None,
        progress: Progress = _no_progress) -> dict:
    """One backfill of ``store`` for every game it is set up for; ``{"store", "games": [...], "found", "gap"}``.
    A game whose store API failed is reported with its error; the others still run."""
    until_ms = until_ms or int(time.time() * 1000)
    since_ms = max(since_ms, oldest_ms(store, until_ms))
    if store == GOOGLE:
        return _google(svc, since_ms, until_ms)
    module, games = STORES[store]
    results, gap, found, failed = [], 0, 0, False
    for game in games(svc.catalog):
        try:
            items = module.fetch(svc, game, since_ms, until_ms)
        except StoreError as exc:
            log.warning("backfill %s of %s: %s", store, game.namespace, exc)
            results.append({"namespace": game.namespace, "error": str(exc)})
            failed = True
            continue
        new = 0
        with progress(items, f"{store} {game.namespace}") as bar:
            for item in bar:
                new += module.record(svc, game, item)
        results.append({"namespace": game.namespace, "found": len(items), "gap": new})
        gap, found = gap + new, found + len(items)
    return _finish(store, results, found, gap, failed, since_ms, until_ms)


def _google(svc: Services, since_ms: int, until_ms: int) -> dict:
    results, gap, found, failed = [], 0, 0, False
    for game in svc.catalog.google_play_games():
        try:
            polled = poll_game(svc, game, until_ms, since_ms=since_ms)
        except StoreError as exc:
            results.append({"namespace": game.namespace, "error": str(exc)})
            failed = True
            continue
        results.append({"namespace": game.namespace, "found": polled["seen"], "gap": polled["recorded"]})
        gap, found = gap + polled["recorded"], found + polled["seen"]
    return _finish(GOOGLE, results, found, gap, failed, since_ms, until_ms)


def _finish(store, results, found, gap, failed, since_ms, until_ms) -> dict:
    backfill_run(store, None if failed and not found else gap)
    log.info("backfill %s: %d event(s) in the store's history since %s, %d never recorded before (the gap)%s",
             store, found, time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(since_ms / 1000)), gap,
             "; some games failed" if failed else "")
    return {"store": store, "since_ms": since_ms, "until_ms": until_ms, "found": found, "gap": gap, "games": results}


def run_due(svc: Services) -> list[dict]:
    """The reconciler's pass: each store whose last pass is older than the interval, from where it ended."""
    interval = svc.settings.backfill_interval_seconds
    if not interval:
        return []
    now_ms, out = int(time.time() * 1000), []
    for store in STORES:
        name = f"backfill:{store}"
        with svc.session() as session:
            cursor = session.get(StoreCursor, name)
            if cursor is not None and (utcnow() - cursor.updated_at).total_seconds() < interval:
                continue
            since = int(cursor.value) - OVERLAP_MS if cursor else oldest_ms(store, now_ms)
        result = run(svc, store, since, now_ms)
        out.append(result)
        if any("error" in game for game in result["games"]):
            continue  # tried again from the same point at the next interval
        with svc.session() as session:
            cursor = session.get(StoreCursor, name) or StoreCursor(name=name)
            cursor.value, cursor.updated_at = str(now_ms), utcnow()
            session.merge(cursor)
            session.commit()
    return out
