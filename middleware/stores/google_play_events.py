"""What a verified, recorded Google Play notification does, after asking the Publisher API.

A notification only says that something changed; the purchase is read from the Publisher API and
only a PURCHASED one is granted (PENDING waits for the next notification, CANCELLED is recorded).
One-time purchases are keyed by the purchase token; subscription periods by their order id.
Refunds are reconciled against the voided quantity, so each unit is taken back once.
"""
from __future__ import annotations

import json
from dataclasses import replace

from config.catalog import Game
from mappers import google_play as m
from mappers.canonical import Reversal

from middleware.orders.record import record_purchase, record_reversal
from middleware.services import Services
from middleware.stores import recorded_events
from middleware.stores.errors import StoreError

ACTOR = "google_play"
PURCHASED, CANCELED = 1, 2                     # oneTimeProductNotification.notificationType
SUB_REVOKED = 12


def followup_for(game: Game, lines: list[dict], subscription: bool) -> str:
    """What to tell Google once granted: consume consumables, acknowledge the rest."""
    steps = []
    for line in lines:
        product = game.by_store_id(m.SOURCE, line["product"])
        if subscription:
            action = "acknowledge_subscription"
        elif product is not None and not game.google_play.consumes(product.sku):
            action = "acknowledge"
        else:
            action = "consume"
        steps.append(f"{action}:{line['product']}")
    return ";".join(steps)


def _accepts(game: Game, test: bool) -> bool:
    return game.allow_sandbox or not test


def voided_units(raw: dict) -> int:
    """Units refunded so far (quantity less what is still refundable), from a productsv2 answer."""
    total = 0
    for item in raw.get("productLineItem") or []:
        offer = item.get("productOfferDetails") or {}
        quantity, refundable = offer.get("quantity"), offer.get("refundableQuantity")
        if isinstance(quantity, int) and isinstance(refundable, int) and 0 <= refundable <= quantity:
            total += quantity - refundable
    return total


def _one_time(svc: Services, game: Game, n) -> tuple[str, str, str | None]:
    state = m.product_purchase_v2(svc.google_play_api.product(game, n.purchase_token))
    if state.state != m.PURCHASED:
        return "processed", f"purchase is {state.state}: nothing granted" + (
            " (granted when a notification says it is purchased)" if state.state == "PENDING" else ""), None
    if not _accepts(game, state.test):
        return "ignored", f"test purchase: game {game.namespace} does not accept sandbox purchases", None
    purchase = m.purchase(n.purchase_token, state, player_ids=game.google_play.player_ids, notification=n)
    purchase = replace(purchase, followup=followup_for(game, purchase.lines, subscription=False))
    return record_purchase(svc, game, purchase, ACTOR).as_event_result("one-time purchase")


def _subscription(svc: Services, game: Game, n) -> tuple[str, str, str | None]:
    token = n.purchase_token
    state = m.subscription_v2(svc.google_play_api.subscription(game, token))
    if n.notification_type == SUB_REVOKED:
        if not state.latest_order_id:
            return "processed", "subscription revoked: no period to take back", None
        notice = Reversal(source=m.SOURCE, key=f"revoked:{state.latest_order_id}", ref=state.latest_order_id,
                          kind="refund", detail={"purchase_token": token, "notification": "SUBSCRIPTION_REVOKED"})
        return record_reversal(svc, notice, game.namespace, ACTOR).as_event_result("subscription revoked")
    if n.notification_type not in m.SUBSCRIPTION_NEW_ORDER:
        kind = m.SUBSCRIPTION_TYPES.get(n.notification_type, n.notification_type)
        return "processed", f"subscription {kind}: recorded, nothing to change", None
    if not state.paid:
        return "processed", f"subscription is {state.state}: nothing granted", None
    if not _accepts(game, state.test):
        return "ignored", f"test subscription: game {game.namespace} does not accept sandbox purchases", None
    period = m.subscription_period(token, state, player_ids=game.google_play.player_ids, notification=n)
    period = replace(period, followup=followup_for(game, period.lines, subscription=True))
    return record_purchase(svc, game, period, ACTOR).as_event_result(
        f"subscription {m.SUBSCRIPTION_TYPES.get(n.notification_type)}")


def voided_notice(svc: Services, game: Game, item: dict, subscription: bool) -> Reversal:
    """The reversal a voided purchase means, the same from its notification and from the voided list.

    A full refund takes the whole purchase (or subscription period) back. A quantity-based partial
    refund is reconciled against the Publisher API's refundable quantity: the notice carries the units
    voided so far, keyed by that total, so each unit is taken back once whichever path saw it first.
    """
    partial = item.get("refund_type") == m.REFUND_QUANTITY or (item.get("voided_quantity") and not subscription)
    if not partial:
        return m.voided_reversal({**item, "voided_quantity": None, "refund_type": 1}, 0, subscription=subscription)
    token = item["purchase_token"]
    raw = svc.google_play_api.product(game, token)
    state, voided = m.product_purchase_v2(raw), voided_units(raw)
    return Reversal(source=m.SOURCE, key=f"voided:{token}:units:{voided}"[:255], ref=token, kind="refund",
                    amount=voided, total=state.quantity,
                    detail={"purchase_token": token, "order_id": item.get("order_id"), "voided_units": voided,
                            "partial": True})


def handle(svc: Services, game: Game, n) -> tuple[str, str, str | None]:
    if n.kind == "test":
        return "ignored", "test notification: nothing changes", None
    try:
        if n.kind == "one_time":
            if n.notification_type == PURCHASED:
                return _one_time(svc, game, n)
            kind = "cancelled (a pending purchase, not a refund)" if n.notification_type == CANCELED else \
                f"type {n.notification_type}"
            return "processed", f"one-time notification {kind}: nothing granted", None
        if n.kind == "subscription":
            return _subscription(svc, game, n)
        if n.kind == "voided":
            notice = voided_notice(svc, game, m.voided_from_notification(n), n.product_type == 1)
            return record_reversal(svc, notice, game.namespace, ACTOR).as_event_result("voided purchase")
    except StoreError as exc:
        if exc.transient:
            raise  # the event stays pending and is tried again
        return "failed", f"the Publisher API refused: {exc}", None
    return "processed", f"{n.kind} notification: recorded, nothing to change", None


def handle_recorded(svc: Services, game: Game, raw_body: bytes) -> tuple[str, str, str | None]:
    envelope = m.push_envelope(json.loads(raw_body))
    return handle(svc, game, m.notification(envelope.data_b64))


def handle_event(svc: Services, inbound_event_id: int) -> str | None:
    """The job of a recorded Google Play notification (``workers/events.google_play``): handled once while
    pending, the outcome kept on its row (``recorded_events.handle``)."""
    return recorded_events.handle(svc, inbound_event_id, m.SOURCE, handle_recorded)
