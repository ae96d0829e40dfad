"""Sinks: kraty-bridge's events (purchases, Kraty's webhooks) delivered at least once to a studio's CRM and
analytics tools, each sink with its own filters, secret, retry schedule and rate limit (``config/sinks.py``).

``emit`` records an event and one delivery per matching sink in the caller's transaction; after the commit
``enqueue_new`` puts the deliveries on the queue (``workers/deliver.py`` sends them). What is not enqueued
(Redis down) is picked up by the reconciler (``workers.deliver.reconcile_deliveries``).
"""
from __future__ import annotations

from middleware.sinks.events import emit, enqueue_new, envelope, next_player_seq
from middleware.sinks.states import (ACTIVE, CANCELLED, DEAD, DELIVERED, DISABLED, FAILED, PENDING, ReplayError, disable_sink, enable_sink,
                     is_disabled, replay_delivery, replay_since)

__all__ = ["ACTIVE", "CANCELLED", "DEAD", "DELIVERED", "DISABLED", "FAILED", "PENDING", "ReplayError", "disable_sink",
           "emit", "enable_sink", "enqueue_new", "envelope", "is_disabled", "next_player_seq", "replay_delivery",
           "replay_since"]
