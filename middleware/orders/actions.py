"""Requests to change an order — retry, revoke — applied under the order's lease, then attempted."""
from __future__ import annotations

import time
from collections.abc import Callable

from sqlalchemy.orm import Session

from middleware.orders import attempts, retry
from middleware.orders import reversals
from middleware.orders.changes import apply_resolve, apply_retry, apply_retry_revoke, apply_revoke
from middleware.ledger import repository as repo
from middleware.ledger import states
from middleware.ledger.models import Fulfilment
from middleware.services import Services

RETRY = "retry"    # carry on with whatever is owed; on FULFILL_FAILED retry the failed items
REVOKE = "revoke"
REVERSE = "reverse"  # apply the store's pending refunds and disputes, then carry on
RETRY_FAILED = "retry_failed"  # ops: RETRY, and on REVOKE_FAILED take back again what Kraty refused
RESOLVE = "resolve"  # ops: close a FULFILL_FAILED / REVOKE_FAILED order without granting (RESOLVED)


def run(services: Services, fulfilment_id: str, actor: str, action: str, *, reason: str = "",
        wait: float | None = None, player_id: str | None = None,
        guard: Callable[[Fulfilment], None] | None = None,
        on_change: Callable[[Session, Fulfilment], None] | None = None) -> str | None:
    """Take the lease (waiting up to ``wait`` s for a concurrent attempt), apply ``action``, attempt.

    ``guard(order)`` runs under the lease before the change; an exception from it gives the lease back and
    changes nothing. ``on_change(session, order)`` runs after the change, in its transaction (an audit entry
    added there commits with it). Returns the order's state afterwards, or None if the lease could not be
    had in time.
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
        if guard is not None:
            guard(f)
        if action == REVOKE:
            apply_revoke(f, actor, reason)
        elif action == REVERSE:
            reversals.apply_pending(session, f, game, actor)
        elif action == RESOLVE:
            apply_resolve(f, actor, reason)
        elif action == RETRY_FAILED and f.state == states.REVOKE_FAILED:
            apply_retry_revoke(f, actor, reason)
        else:
            apply_retry(f, actor, game, player_id, reason)
        if on_change is not None:
            on_change(session, f)
        if f.state not in states.ACTIVE:
            repo.release(f)
            session.commit()
            return f.state
        # the attempt commits the claim and the change above before it calls Kraty
        outcome = attempts.attempt_loaded(services, session, f, actor)
    retry.schedule(services, fulfilment_id, outcome)
    return outcome.state

