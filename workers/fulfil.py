"""The fulfil job: grant an order's pending items in Kraty."""
from __future__ import annotations

from middleware.orders import attempt_core, retry
from middleware.services import Services

from workers import runtime


@runtime.job
def fulfil(svc: Services, fulfilment_id: str) -> str | None:
    outcome = attempt_core.attempt_fulfil(svc, fulfilment_id, actor="worker")
    retry.schedule(svc, fulfilment_id, outcome)
    return outcome.state
