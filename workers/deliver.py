"""The delivery job: one attempt of a delivery to a sink (``middleware/sinks/delivery.py``)."""
from __future__ import annotations

from middleware.services import Services
from middleware.sinks.delivery import deliver_now

from workers import runtime


@runtime.job
def deliver(svc: Services, delivery_id: str) -> str:
    return deliver_now(svc, delivery_id)
