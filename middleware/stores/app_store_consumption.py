"""Apple's refund requests: on ``CONSUMPTION_REQUEST``, send the consumption information Apple asks for.

A customer asked Apple for a refund; Apple asks the app (within 12 hours) what it knows. The answer
(``ConsumptionRequest`` of Apple's library, App Store Server API ``Send Consumption Information``)
is computed from the ledger and Kraty:

- ``deliveryStatus``: DELIVERED once the order was granted (whatever happened after), else
  UNDELIVERED_SERVER_OUTAGE while it is still being tried or failed on Kraty errors, else
  UNDELIVERED_OTHER (no order, or refused);
- ``consumptionPercentage`` (milliunits), where Kraty can tell: for each granted currency or item,
  what the player no longer holds of it (granted minus the current balance, at least 0) — a lower
  bound, since other purchases may have topped the balance up; left out when Kraty has no balance;
- ``refundPreference`` and ``sampleContentProvided``: the game's settings (``[app_store]``);
  GRANT_PRORATED is sent only with a percentage above 0, as Apple requires;
- ``customerConsented``: true — a game turns this on (``consumption_info``) only when its terms
  give the players' consent; Apple refuses anything else.

It runs in the notification's job, so a transient failure (Apple or Kraty unreachable, 429, 5xx)
raises and the job is tried again with backoff like any store event; what was sent (or why nothing
was) is a history entry on the order, shown in the order detail of the ops API and console.
"""
from __future__ import annotations

import time

from appstoreserverlibrary.models.ConsumptionRequest import ConsumptionRequest
from appstoreserverlibrary.models.DeliveryStatus import DeliveryStatus
from appstoreserverlibrary.models.RefundPreference import RefundPreference
from sqlalchemy import select

from config.catalog import Game

from middleware.kraty.client import KratyError
from middleware.ledger import repository as repo
from middleware.ledger import states
from middleware.ledger.models import Fulfilment
from middleware.services import Services
from middleware.stores.errors import StoreError

ACTOR = "app_store:consumption"
DEADLINE_MS = 12 * 3_600_000  # Apple takes consumption information for 12 hours after the request
GRANTED = (states.FULFILLED, states.REVOKING, states.REVOKED, states.REVOKE_FAILED)
TRYING = (states.RECEIVED, states.FULFILLING)


def delivery_status(order: Fulfilment | None) -> DeliveryStatus:
    if order is None:
        return DeliveryStatus.UNDELIVERED_OTHER
    if order.state in GRANTED or any(item.state in (states.ITEM_GRANTED, states.ITEM_REVOKED) for item in order.items):
        return DeliveryStatus.DELIVERED
    if order.state in TRYING:
        return DeliveryStatus.UNDELIVERED_SERVER_OUTAGE
    return DeliveryStatus.UNDELIVERED_OTHER


def consumed_percentage(svc: Services, game: Game, order: Fulfilment) -> int | None:
    """Milliunits (0..100000) of the granted goods the player no longer holds; None when Kraty cannot tell."""
    rows = [item for item in order.items if item.kind in ("currency", "item") and item.amount > item.revoked_amount
            and item.state == states.ITEM_GRANTED]
    if not rows or not order.player_id:
        return None
    try:
        summary = svc.kraty(game.namespace).player_profile(order.player_id, limit=1).get("summary") or {}
    except KratyError as exc:
        if exc.transient:
            raise StoreError(f"Kraty: {exc}", transient=True, code="kraty_unreachable") from exc
        return None  # an unknown player: nothing to tell
    fractions = []
    for item in rows:
        holdings = summary.get("wallet" if item.kind == "currency" else "inventory") or {}
        held = holdings.get(item.target)
        if not isinstance(held, int):
            continue
        granted = item.amount - item.revoked_amount
        fractions.append(min(granted, max(0, granted - held)) / granted)
    if not fractions:
        return None
    return round(100_000 * sum(fractions) / len(fractions))


def request_body(svc: Services, game: Game, order: Fulfilment | None) -> ConsumptionRequest:
    api = game.app_store.api
    delivered = delivery_status(order)
    percentage = consumed_percentage(svc, game, order) if delivered == DeliveryStatus.DELIVERED else None
    preference = api.refund_preference
    if preference == "GRANT_PRORATED" and not percentage:
        preference = None  # Apple refuses GRANT_PRORATED without a percentage above 0
    return ConsumptionRequest(customerConsented=True, sampleContentProvided=api.sample_content_provided,
                              deliveryStatus=delivered, consumptionPercentage=percentage,
                              refundPreference=RefundPreference(preference) if preference else None)


def _order(namespace: str, transaction_id: str, session) -> Fulfilment | None:
    return session.scalar(select(Fulfilment).where(Fulfilment.namespace == namespace,
                                                   Fulfilment.source == "app_store",
                                                   Fulfilment.transaction_id == transaction_id))


def answer(svc: Services, game: Game, notification: dict, transaction: dict) -> tuple[str, str, str | None]:
    """The CONSUMPTION_REQUEST job: (outcome, detail, order id) for the event's row."""
    transaction_id = str(transaction.get("transactionId"))
    environment = notification.get("data", {}).get("environment") or transaction.get("environment")
    reason = notification.get("data", {}).get("consumptionRequestReason")
    api = game.app_store.api
    with svc.session() as session:
        order = _order(game.namespace, transaction_id, session)
        order_id = order.id if order else None
        if api is None or not api.consumption_info:
            why = "no App Store Server API key" if api is None else "consumption_info is false for this game"
            return _noted(session, order, "processed", f"consumption request ({reason}) not answered: {why}",
                          {"event": "consumption_request", "reason": reason, "sent": False, "why": why})
        signed = notification.get("signedDate")
        if isinstance(signed, int) and time.time() * 1000 - signed > DEADLINE_MS:
            return _noted(session, order, "failed", "consumption request not answered within Apple's 12 hours",
                          {"event": "consumption_request", "reason": reason, "sent": False, "why": "deadline passed"})
        body = request_body(svc, game, order)
    svc.app_store_api.send_consumption(game, environment, transaction_id, body)  # StoreError: the job retries
    sent = {k: (v.value if hasattr(v, "value") else v) for k, v in (
        ("customerConsented", body.customerConsented), ("sampleContentProvided", body.sampleContentProvided),
        ("deliveryStatus", body.deliveryStatus), ("consumptionPercentage", body.consumptionPercentage),
        ("refundPreference", body.refundPreference)) if v is not None}
    with svc.session() as session:
        order = session.get(Fulfilment, order_id) if order_id else None
        return _noted(session, order, "processed", f"consumption information sent to Apple: {sent}",
                      {"event": "consumption_request", "reason": reason, "sent": True, "consumption": sent})


def _noted(session, order: Fulfilment | None, outcome: str, detail: str, entry: dict) -> tuple[str, str, str | None]:
    if order is not None:
        repo.note(order, ACTOR, entry)
        session.commit()
    return outcome, detail, order.id if order else None
