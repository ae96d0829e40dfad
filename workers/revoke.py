"""The revoke job: take back what an order granted."""
from __future__ import annotations

from middleware.orders import actions

from middleware.orders import attempts
from middleware.services import services

from workers import runtime


def revoke(fulfilment_id: str) -> str | None:
    with runtime.app().app_context():
        svc = services()
        outcome = attempts.attempt_revoke(svc, fulfilment_id, actor="worker")
        actions.schedule_retry(svc, fulfilment_id, outcome)
        return outcome.state
