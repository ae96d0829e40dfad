"""The revoke job: take back what an order granted."""
from __future__ import annotations

from middleware.orders import attempts, retry
from middleware.services import Services

from workers import runtime


@runtime.job
def revoke(svc: Services, fulfilment_id: str) -> str | None:
    outcome = attempts.attempt_revoke(svc, fulfilment_id, actor="worker")
    retry.schedule(svc, fulfilment_id, outcome)
    return outcome.state
