"""The delivery job: one attempt of a delivery to a sink (``middleware/sinks/delivery.py``)."""
from __future__ import annotations

from middleware.services import services
from middleware.sinks.delivery import deliver_now

from workers import runtime


def deliver(delivery_id: str) -> str:
    with runtime.app().app_context():
        return deliver_now(services(), delivery_id)
