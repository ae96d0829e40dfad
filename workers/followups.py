"""The store follow-up job: tell Google Play a granted order is granted (``middleware/stores/google_play_followups.py``)."""
from __future__ import annotations

from middleware.services import Services
from middleware.stores.google_play_followups import followup_now

from workers import runtime


@runtime.job
def followup(svc: Services, fulfilment_id: str) -> str | None:
    return followup_now(svc, fulfilment_id)
