"""Store follow-ups: tell the store that a granted order is granted (Google Play consume / acknowledge).

An unacknowledged Play purchase is refunded by Google after three days, so this is retried on its
own — with backoff, and by the reconciler if a job is lost — and never by granting again. It runs
only for FULFILLED orders: an order that was not granted is left unacknowledged, and refunded.
The job is ``workers/followups.py``.
"""
from __future__ import annotations

import logging
from datetime import timedelta

from middleware.orders import retry
from middleware.ledger import repository as repo
from middleware.ledger import states
from middleware.ledger.models import Fulfilment, utcnow
from middleware.services import Services
from middleware.stores.errors import StoreError


log = logging.getLogger(__name__)


def steps(followup: str) -> list[tuple[str, str]]:
    """``"consume:gems_100;acknowledge:sword"`` -> [("consume", "gems_100"), ("acknowledge", "sword")]."""
    return [tuple(step.split(":", 1)) for step in followup.split(";") if ":" in step]


def _call(svc: Services, f: Fulfilment, action: str, product: str) -> None:
    game = svc.catalog.game(f.namespace)
    token = f.player_key or f.transaction_id  # the purchase token (a subscription period's order id is the key)
    if action == "consume":
        svc.google_play_api.consume(game, product, token)
    else:
        svc.google_play_api.acknowledge(game, product, token, subscription=action == "acknowledge_subscription")


def followup_now(svc: Services, fulfilment_id: str) -> str | None:
    with svc.session() as session:
        f = session.get(Fulfilment, fulfilment_id)
        if f is None or f.followup_state != "pending" or f.state != states.FULFILLED:
            return None if f is None else f.followup_state
        f.followup_attempts += 1
        try:
            for action, product in steps(f.followup):
                _call(svc, f, action, product)
        except StoreError as exc:
            now = utcnow()
            delay = retry.for_followups(svc.settings).next_delay(f.followup_attempts, exc.retry_after) \
                if exc.transient else None
            if delay is not None:
                f.followup_at = now + timedelta(seconds=delay)
                repo.note(f, "worker", {"followup": f.followup, "error": str(exc), "retry_in": round(delay, 3)})
                session.commit()
                svc.jobs.followup(fulfilment_id, f.followup_attempts, delay)
                return "pending"
            f.followup_state, f.followup_at = "failed", None
            f.attention = f"could not tell the store the order is granted ({f.followup}): {exc}"
            repo.note(f, "worker", {"followup": f.followup, "error": str(exc), "gave_up": True})
            session.commit()
            log.error("order %s: follow-up %s failed: %s", fulfilment_id, f.followup, exc)
            return "failed"
        f.followup_state, f.followup_at = "done", None
        repo.note(f, "worker", {"followup": f.followup, "done": True})
        session.commit()
        return "done"
