"""What a verified, recorded App Store notification does: grant, take back, give back, or nothing.

Runs in a worker (``workers/events.app_store`` calls ``handle_event``) after the webhook answered 2xx; the notification was
verified (chain, signature, bundle, environment, nested transaction) before it was recorded.
"""
from __future__ import annotations

import json

from config.catalog import Game
from mappers import app_store as m

from middleware.orders.record import record_purchase, record_reversal
from middleware.services import Services
from middleware.stores import recorded_events
from middleware.stores.app_store_consumption import answer as answer_consumption
from middleware.stores.app_store_verify import decode_recorded

ACTOR = "app_store"


def handle_recorded(svc: Services, game: Game, raw_body: bytes) -> tuple[str, str, str | None]:
    notification, transaction = decode_recorded(json.loads(raw_body)["signedPayload"])
    kind = notification.get("notificationType")
    if kind == "CONSUMPTION_REQUEST":  # Apple asks what it needs to decide a refund request
        return answer_consumption(svc, game, notification, transaction)
    what, notice = m.classify(notification, transaction, game.app_store.player_ids)
    if what == m.GRANT:
        recorded = record_purchase(svc, game, notice, ACTOR)
    elif what == m.REVERSE:
        recorded = record_reversal(svc, notice, game.namespace, ACTOR)
    else:
        return "processed", f"{kind}: recorded, nothing to change", None
    return recorded.as_event_result(kind)


def handle_event(svc: Services, inbound_event_id: int) -> str | None:
    """The job of a recorded App Store notification (``workers/events.app_store``): handled once while pending,
    the outcome kept on its row (``recorded_events.handle``)."""
    return recorded_events.handle(svc, inbound_event_id, m.SOURCE, handle_recorded)
