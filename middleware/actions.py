"""Requests to change an order — retry, revoke — applied under the order's lease, then attempted."""
from __future__ import annotations

import logging
import time

from redis.exceptions import RedisError

from workers.queues import enqueue_attempt, enqueue_followup

from .sinks.events import enqueue_new

from . import engine, reversals
from .changes import apply_retry, apply_revoke
from .ledger import repository as repo
from .ledger import states
from .services import Services

log = logging.getLogger(__name__)

RETRY = "retry"    # carry on with whatever is owed; on FULFILL_FAILED retry the failed items
REVOKE = "revoke"
REVERSE = "reverse"  # apply the store's pending refunds and disputes, then carry on


def run(services: Services, fulfilment_id: str, actor: str, action: str, *, reason: str = "",
        wait: float | None = None, player_id: str | None = None) -> str | None:
    """Take the lease (waiting up to ``wait`` s for a concurrent attempt), apply ``action``, attempt.

    Returns the order's state afterwards, or None if the lease could not be had in time.
    """
    wait = services.settings.put_wait_seconds if wait is None else wait
    deadline = time.monotonic() + wait
    with services.session() as session:
        while not repo.claim(session, fulfilment_id, services.identity, services.settings.lease_seconds,
                             states.STATES, commit=False):
            if time.monotonic() >= deadline:
                return None
            time.sleep(0.02)
        f = repo.load(session, fulfilment_id)
        game = services.catalog.game(f.namespace)
        if action == REVOKE:
            apply_revoke(f, actor, reason)
        elif action == REVERSE:
            reversals.apply_pending(session, f, game, actor)
        else:
            apply_retry(f, actor, game, player_id)
        if f.state not in states.ACTIVE:
            repo.release(f)
            session.commit()
            return f.state
        # the attempt commits the claim and the change above before it calls Kraty
        outcome = engine.attempt_loaded(services, session, f, actor)
    schedule_retry(services, fulfilment_id, outcome)
    return outcome.state


def schedule_retry(services: Services, fulfilment_id: str, outcome: engine.Outcome) -> None:
    """Enqueue what an attempt left to do: the next attempt, or telling the store the order is granted.
    If Redis is down, what is stored (next_attempt_at, followup_at) lets the reconciler do it."""
    try:
        if outcome.retry_in is not None:
            enqueue_attempt(services.redis, fulfilment_id, outcome.state, outcome.attempts, delay=outcome.retry_in)
        if outcome.followup:
            enqueue_followup(services.redis, fulfilment_id, 0)
        if outcome.deliveries:
            enqueue_new(services.redis, outcome.deliveries)
    except RedisError as exc:
        log.warning("could not enqueue the next step of %s (%s); the reconciler will pick it up", fulfilment_id, exc)

