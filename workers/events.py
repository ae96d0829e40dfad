"""Store event jobs: handle an event the webhook recorded (``middleware/stores/recorded_events.py``); apply an
order's pending reversals."""
from __future__ import annotations

from middleware.orders import actions
from middleware.services import Services
from middleware.stores.recorded_events import handle_now

from workers import runtime


@runtime.job
def handle(svc: Services, inbound_event_id: int) -> str | None:
    return handle_now(svc, inbound_event_id)


@runtime.job
def reverse(svc: Services, fulfilment_id: str) -> str | None:
    return actions.run(svc, fulfilment_id, "worker", actions.REVERSE)
