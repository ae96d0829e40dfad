"""Requests to change an order — retry, revoke — applied under the order's lease, then attempted."""
from __future__ import annotations

import logging
import time

from redis.exceptions import RedisError
from sqlalchemy.orm import object_session

from config.catalog import Game
from workers.queues import enqueue_attempt

from . import engine
from .ledger import repository as repo
from .ledger import states
from .ledger.models import Fulfilment
from .orders import item_rows, resolve_line
from .services import Services

log = logging.getLogger(__name__)

RETRY = "retry"    # carry on with whatever is owed; on FULFILL_FAILED retry the failed items
REVOKE = "revoke"


def _reresolve_unknown_lines(f: Fulfilment, game: Game) -> None:
    """Lines that named nothing fulfillable are resolved again: the catalog may have been fixed."""
    lines = {item.line_no for item in f.items if item.kind is None}
    for line_no in sorted(lines):
        resolved = resolve_line(game, f.lines[line_no])
        if resolved.error_code:
            continue
        for old in [item for item in f.items if item.line_no == line_no]:
            f.items.remove(old)
        object_session(f).flush()  # the old rows go before the new ones take their (line, component) keys
        f.items.extend(item_rows(line_no, resolved))


def apply_retry(f: Fulfilment, actor: str, game: Game) -> bool:
    if f.state != states.FULFILL_FAILED:
        return False
    _reresolve_unknown_lines(f, game)
    retried = 0
    for item in f.items:
        if item.state == states.ITEM_FAILED and item.kind is not None:
            item.state, retried = states.ITEM_PENDING, retried + 1
    f.attempts = 0
    repo.set_state(f, states.FULFILLING, actor, {"action": "retry", "items": retried})
    return True


def apply_revoke(f: Fulfilment, actor: str, reason: str) -> bool:
    if f.state in (states.REVOKING, states.REVOKED):
        return False
    # FAILED: Kraty refused the grant. PENDING on a RECEIVED order: Kraty was never called. Other
    # PENDING items may have been granted by a call whose answer was lost: the revoke attempt settles them.
    never_granted = [item for item in f.items if item.state == states.ITEM_FAILED
                     or (item.state == states.ITEM_PENDING and f.state == states.RECEIVED)]
    for item in never_granted:
        item.state = states.ITEM_SKIPPED
    for item in f.items:
        if item.state == states.ITEM_REVOKE_FAILED:
            item.state = states.ITEM_GRANTED
    f.attempts = 0
    f.next_attempt_at = None
    detail = {"action": "revoke", "reason": reason, "never_granted": len(never_granted)}
    if f.state == states.RECEIVED:
        repo.set_state(f, states.REVOKED, actor, detail, reason=f"revoked before it was granted: {reason}")
    else:
        repo.set_state(f, states.REVOKING, actor, detail, reason=reason)
    return True


def run(services: Services, fulfilment_id: str, actor: str, action: str, *, reason: str = "",
        wait: float | None = None) -> str | None:
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
        if action == REVOKE:
            apply_revoke(f, actor, reason)
        else:
            apply_retry(f, actor, services.catalog.game(f.namespace))
        if f.state not in states.ACTIVE:
            repo.release(f)
            session.commit()
            return f.state
        # the attempt commits the claim and the change above before it calls Kraty
        outcome = engine.attempt_loaded(services, session, f, actor)
    schedule_retry(services, fulfilment_id, outcome)
    return outcome.state


def schedule_retry(services: Services, fulfilment_id: str, outcome: engine.Outcome) -> None:
    """Enqueue the next attempt; if Redis is down the stored next_attempt_at lets the reconciler do it."""
    if outcome.retry_in is None:
        return
    try:
        enqueue_attempt(services.redis, fulfilment_id, outcome.state, outcome.attempts, delay=outcome.retry_in)
    except RedisError as exc:
        log.warning("could not enqueue retry of %s (%s); the reconciler will pick it up", fulfilment_id, exc)

