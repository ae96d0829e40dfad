"""The metrics the processes record as things happen (counters and histograms), and one helper per event.

Creating them registers them in prometheus_client's default registry and nothing more: no file, no
server. Under ``PROMETHEUS_MULTIPROC_DIR`` (gunicorn workers, RQ workers) each process writes its values
to its own files in that directory, and a scrape adds them up (``exposition.py``); every metric here has
labels, so a process creates its files only when it first records something. The gauges (queues,
ledger) are not here: they are computed at scrape time (``collectors.py``).
"""
from __future__ import annotations

import re
import time
from contextlib import contextmanager
from datetime import datetime

from flask import g, has_request_context
from prometheus_client import Counter, Histogram

INGESTED = Counter("kb_ingested_events", "Store events, receipts and orders that reached an ingest endpoint, by "
                   "what the endpoint did: recorded (new, to be acted on), ignored (new, recorded, nothing to do), "
                   "duplicate (already recorded), rejected (refused with a 4xx, or recorded as unreadable), error "
                   "(5xx: the sender retries)", ["source", "outcome"])
HANDLED = Counter("kb_handled_events", "Recorded store events a worker finished handling, by final outcome "
                  "(processed, ignored, failed, ...)", ["source", "outcome"])
TIME_TO_FULFILLED = Histogram(
    "kb_time_to_fulfilled_seconds", "From an order's receipt to its first FULFILLED, observed then",
    ["source"], buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 4 * 3600, 86400))
KRATY_CALLS = Counter("kb_kraty_calls", "Calls to Kraty's server API by operation and status (the HTTP status, "
                      "or timeout / error when there was no answer)", ["operation", "status"])
KRATY_SECONDS = Histogram("kb_kraty_call_seconds", "Latency of calls to Kraty's server API, answered or not",
                          ["operation"], buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30))
DELIVERED_SECONDS = Histogram(
    "kb_sink_delivery_seconds", "From an event's delivery row being created to the sink taking it (2xx)",
    ["sink"], buckets=(0.1, 0.5, 1, 5, 30, 60, 300, 1800, 3600, 2 * 3600, 5 * 3600, 10 * 3600, 86400, 2 * 86400))

# Kraty paths (after /server/v1) -> a stable operation name; the first match wins.
KRATY_OPERATIONS = (
    ("POST", re.compile(r"^/players/[^/]+/wallet/[^/]+/credit$"), "credit"),
    ("POST", re.compile(r"^/players/[^/]+/wallet/[^/]+/debit$"), "debit"),
    ("POST", re.compile(r"^/players/[^/]+/inventory/[^/]+/grant$"), "grant_item"),
    ("POST", re.compile(r"^/players/[^/]+/inventory/[^/]+/revoke$"), "revoke_item"),
    ("POST", re.compile(r"^/players/[^/]+/grants$"), "make_good"),
    ("POST", re.compile(r"^/players/[^/]+/merge$"), "merge_players"),
    ("GET", re.compile(r"^/players/[^/]+/export$"), "export_player"),
    ("GET", re.compile(r"^/players/[^/]+$"), "player_profile"),
    ("DELETE", re.compile(r"^/players/[^/]+$"), "delete_player"),
    ("POST", re.compile(r"^/migrate/(players|wallets|inventory)$"), "migrate"),
)


def kraty_operation(method: str, path: str) -> str:
    for op_method, pattern, name in KRATY_OPERATIONS:
        if method == op_method and pattern.match(path):
            return name
    return "other"


@contextmanager
def kraty_call(method: str, path: str):
    """Time one Kraty call and count it by operation and status (read from the KratyError it raised)."""
    operation = kraty_operation(method, path)
    started = time.perf_counter()
    status = "200"
    try:
        yield
    except BaseException as exc:
        code, http = getattr(exc, "code", None), getattr(exc, "status", None)
        status = "timeout" if code == "timeout" else str(http) if http and http != 200 else "error"
        raise
    finally:
        KRATY_SECONDS.labels(operation).observe(time.perf_counter() - started)
        KRATY_CALLS.labels(operation, status).inc()


INGEST_OUTCOMES = {"pending": "recorded", "recorded": "recorded", "ignored": "ignored", "rejected": "rejected"}


def ingested(source: str, new, outcome: str = "recorded") -> None:
    """An ingest endpoint recorded an event (``new`` truthy: a new row, e.g. its id) or found it already there.

    ``outcome``: what the row says (``pending`` -> recorded, ``ignored``, ``rejected``).
    """
    label = INGEST_OUTCOMES.get(outcome, outcome) if new else "duplicate"
    INGESTED.labels(source, label).inc()
    if has_request_context():
        g.kb_ingest_counted = True  # the after-request hook must not count this request again


def ingest_refused(source: str, status: int) -> None:
    INGESTED.labels(source, "rejected" if status < 500 else "error").inc()


def handled(source: str, outcome: str) -> None:
    HANDLED.labels(source, outcome).inc()


def fulfilled(source: str, received_at: datetime, now: datetime) -> None:
    TIME_TO_FULFILLED.labels(source).observe(max(0.0, (now - received_at).total_seconds()))


def after_fulfil_attempt(f, outcome):
    """``kb_time_to_fulfilled_seconds`` when a fulfil attempt (committed) left an order FULFILLED for the
    first time: not a re-grant after a reversed refund (``reversal_seq``). Returns ``outcome``."""
    if outcome.ran and outcome.state == "FULFILLED" and not f.reversal_seq:
        fulfilled(f.source, f.created_at, f.state_changed_at)
    return outcome


def delivered(sink: str, created_at: datetime, now: datetime) -> None:
    DELIVERED_SECONDS.labels(sink).observe(max(0.0, (now - created_at).total_seconds()))
