"""The fulfil job: grant an order's pending items in Kraty."""
from __future__ import annotations

from middleware.orders import actions, attempt_core
from middleware.services import services

from workers import runtime


def fulfil(fulfilment_id: str) -> str | None:
    with runtime.app().app_context():
        svc = services()
        outcome = attempt_core.attempt_fulfil(svc, fulfilment_id, actor="worker")
        actions.schedule_retry(svc, fulfilment_id, outcome)
        return outcome.state
