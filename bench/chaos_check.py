"""What the chaos run measures and checks.

``ProgressMonitor`` looks at the ledger once a second and keeps, for every piece of unfinished work (an
active order, a store event not yet handled, a refund waiting on its order), the time it last changed; the
time it spends waiting for a retry it was given (``next_attempt_at`` in the future) does not count. The
longest time any of them sat still is the run's longest stall, to hold against the bound
``KB_RECONCILE_STALE_SECONDS + KB_RECONCILE_INTERVAL_SECONDS``.

``verdict`` checks the emulator's ledger (what Kraty really did) against what the storefronts were told.
"""
from __future__ import annotations

import threading
import time
from collections import Counter
from datetime import datetime, timezone

from sqlalchemy import create_engine, text
from sqlalchemy.exc import SQLAlchemyError

from middleware.ledger.states import ACTIVE

from bench.chaos_clients import Order

SAMPLE = 1.0   # seconds between two looks at the ledger
ACTIVE_SQL = ", ".join(f"'{state}'" for state in ACTIVE)
WORK = {  # kind of work -> (query of (key, what changes when it moves, due time or NULL))
    "order": f"SELECT id, state || ':' || attempts || ':' || reversal_seq || ':' || "
             f"coalesce(CAST(updated_at AS TEXT), ''), next_attempt_at FROM fulfilments WHERE state IN ({ACTIVE_SQL})",
    "event": "SELECT id, attempts || ':' || coalesce(CAST(attempted_at AS TEXT), ''), NULL FROM inbound_events "
             "WHERE outcome = 'pending'",
    "refund": "SELECT id, state || ':' || coalesce(outcome, ''), NULL FROM reversals WHERE state = 'pending'",
}
GRANTS, TAKEBACKS = ("credit", "grant"), ("debit", "revoke")


def _epoch(value) -> float | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value.timestamp()


class ProgressMonitor:
    def __init__(self, database_url: str):
        self.engine = create_engine(database_url, pool_pre_ping=True, pool_size=1,
                                    connect_args={"connect_timeout": 2})
        self.seen: dict[tuple, tuple[str, float]] = {}    # (kind, id) -> (last signature, stall clock start)
        self.longest = 0.0
        self.longest_what = ""
        self.unfinished = 0
        self.samples = self.failed_samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="progress-monitor", daemon=True)

    def start(self) -> "ProgressMonitor":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)
        self.engine.dispose()

    def _run(self) -> None:
        while not self._stop.wait(SAMPLE):
            try:
                self.sample()
            except SQLAlchemyError:
                self.failed_samples += 1   # the database is down: the clocks keep running

    def sample(self) -> int:
        now = time.time()
        rows = []
        with self.engine.connect() as connection:
            for kind, sql in WORK.items():
                rows += [((kind, key), signature, _epoch(due)) for key, signature, due in connection.execute(text(sql))]
        current = {}
        for key, signature, due in rows:
            previous = self.seen.get(key)
            start = now if previous is None or previous[0] != signature else previous[1]
            if due is not None and due > start:
                start = min(due, now)   # waiting for its retry time is not a stall
            current[key] = (signature, start)
            if now - start > self.longest:
                self.longest, self.longest_what = now - start, f"{key[0]} {key[1]}"
        self.seen = current
        self.samples += 1
        self.unfinished = len(current)
        return self.unfinished


def ledger_counts(entries: list[dict]) -> tuple[Counter, Counter]:
    grants, takebacks = Counter(), Counter()
    for entry in entries:
        if entry["kind"] in GRANTS:
            grants[entry.get("sourceRefId")] += 1
        elif entry["kind"] in TAKEBACKS:
            takebacks[entry.get("sourceRefId")] += 1
    return grants, takebacks


def verdict(orders: list[Order], entries: list[dict]) -> dict:
    """Kraty's ledger against the storefronts' answers: every count here must be 0."""
    grants, takebacks = ledger_counts(entries)
    known = {order.txn for order in orders}
    found = Counter()
    for order in orders:
        granted, taken = grants[order.txn], takebacks[order.txn]
        accepted = order.accepted_at is not None
        revoked = order.revoked_at is not None
        found["double_grant"] += granted > 1
        # a refund that reached the bridge before its grant cancels the order: nothing granted, nothing taken
        found["missing_grant"] += accepted and not revoked and granted == 0
        found["granted_not_accepted"] += not accepted and granted > 0
        found["double_takeback"] += taken > 1
        found["missing_takeback"] += revoked and taken < granted
        found["takeback_not_asked"] += not revoked and taken > 0
        found["no_definite_answer"] += order.kind != "forged" and (not accepted or
                                                                   (order.revoke and order.revoked_at is None))
    found["granted_unknown_order"] = sum(1 for ref in grants if ref not in known)
    return {name: found[name] for name in ("double_grant", "missing_grant", "granted_not_accepted",
                                           "granted_unknown_order", "double_takeback", "missing_takeback",
                                           "takeback_not_asked", "no_definite_answer")}


def settled(orders: list[Order], entries: list[dict], unfinished: int) -> bool:
    """Nothing left to do: no unfinished work in the ledger, and Kraty shows every accepted grant and take-back."""
    if unfinished:
        return False
    grants, takebacks = ledger_counts(entries)
    return all(takebacks[o.txn] >= grants[o.txn] if o.revoked_at is not None else grants[o.txn] >= 1
               for o in orders if o.accepted_at is not None)
