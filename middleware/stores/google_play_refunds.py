"""A refund the studio asks Google Play for (``ops.refunds``): the Publisher API's ``orders.refund``.

``POST /androidpublisher/v3/applications/{packageName}/orders/{orderId}:refund?revoke=true|false`` answers an
empty body; ``revoke=true`` also ends the buyer's access in Google's eyes. Nothing is taken back on that answer:
the refund shows up as a voided purchase (the Real-time developer notification ``voidedPurchaseNotification``
or the voided-purchases poll, ``workers/google_voided.py``), which takes the goods back through the normal
reversal path — or, for a refund asked without revoking, takes nothing (``orders.refund_requests.kept_goods``).
"""
from __future__ import annotations

from config.catalog import Game

from middleware.ledger.models import Fulfilment
from middleware.services import Services


def order_id_of(f: Fulfilment) -> str | None:
    """The Play order id (``GPA.…``) of an order: a subscription period is keyed by it; a one-time purchase is
    keyed by its purchase token and its order id is in what the store said when it was received."""
    if f.transaction_id != f.player_key:
        return f.transaction_id
    return next((h.detail["order_id"] for h in f.history
                 if isinstance(h.detail, dict) and isinstance(h.detail.get("order_id"), str)), None)


def ask(svc: Services, game: Game, order_id: str, revoke: bool) -> dict:
    """Refund the Play order ``order_id`` (``GPA.…``); raises ``StoreError`` (transient: safe to ask again —
    Google refuses a second refund of one order)."""
    svc.google_play_api.refund_order(game, order_id, revoke)
    return {"order": order_id, "revoke": revoke, "status": "requested"}
