"""The store follow-up job: tell Google Play a granted order is granted (``middleware/stores/google_play_followups.py``)."""
from __future__ import annotations

from middleware.services import services
from middleware.stores.google_play_followups import followup_now

from workers import runtime


def followup(fulfilment_id: str) -> str | None:
    with runtime.app().app_context():
        return followup_now(services(), fulfilment_id)
