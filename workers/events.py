"""Store event jobs: handle an event the webhook recorded (``middleware/stores/recorded_events.py``); apply an
order's pending reversals."""
from __future__ import annotations

from middleware.orders import actions
from middleware.services import services
from middleware.stores.recorded_events import handle_now

from workers import runtime


def handle(inbound_event_id: int) -> str | None:
    with runtime.app().app_context():
        return handle_now(services(), inbound_event_id)


def reverse(fulfilment_id: str) -> str | None:
    with runtime.app().app_context():
        return actions.run(services(), fulfilment_id, "worker", actions.REVERSE)
