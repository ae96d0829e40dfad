"""Google Play: Pub/Sub push envelopes, Real-time developer notifications and the Android Publisher
API's purchase resources -> canonical purchases and reversals. Pure: no I/O.

Facts: ``../shared/protocols/stores.md`` (Google Play). A notification only says that something changed;
the caller fetches the purchase (``productsv2`` / ``products`` v1 / ``subscriptionsv2``), reads it with
``mappers.google_play_api`` (re-exported here) and passes the state to ``purchase`` /
``subscription_period``; refunds come from ``voided`` items (or a voided notification) via
``voided_reversal``. The fulfilment key of a one-time product is its ``purchaseToken``; of a subscription
period, that period's order id (each renewal is a new order on the same token). Google adds fields over
time, so unknown fields are ignored; the fields we rely on are checked and a payload without them is
refused (``ValidationError``; ``NotificationError`` for a message's data).
"""
from __future__ import annotations

import hashlib

from marshmallow import ValidationError

from mappers.accelbyte import is_clean_id
from mappers.canonical import Purchase, Reversal
from mappers.google_play_api import (
    CANCELLED,
    PENDING,
    PURCHASED,
    REFUND_QUANTITY,
    SOURCE,
    ProductState,
    SubscriptionState,
    product_purchase_v1,
    product_purchase_v2,
    subscription_v2,
    voided,
)
from mappers.google_play_notifications import (  # noqa: F401  (SUBSCRIPTION_TYPES: read from here)
    PRODUCT_ONE_TIME,
    PRODUCT_SUBSCRIPTION,
    SUBSCRIPTION_TYPES,
    DeveloperNotification,
    Envelope,
    NotificationError,
    notification,
    push_envelope,
)

__all__ = [  # with the Publisher API side (mappers.google_play_api), re-exported
    "CANCELLED", "PENDING", "PURCHASED", "SOURCE", "DeveloperNotification", "Envelope", "NotificationError",
    "ProductState", "SubscriptionState", "notification", "product_purchase_v1", "product_purchase_v2", "purchase",
    "push_envelope", "subscription_period", "subscription_v2", "voided", "voided_from_notification",
    "voided_reversal",
]

PLAYER_IDS_LINKED, PLAYER_IDS_ACCOUNT = "linked", "obfuscated_account_id"
ONE_TIME_PURCHASED, ONE_TIME_CANCELED = 1, 2
SUBSCRIPTION_NEW_ORDER = frozenset({1, 2, 4})  # RECOVERED, RENEWED, PURCHASED: a period may have been paid for
MAX_KEY = 255  # the ledger's transaction id, payment ref, player key and reversal key columns


# ---------------------------------------------------------------- canonical purchases and reversals
def _player(account_id: str | None, player_ids: str) -> tuple[str | None, str]:
    """(player id, hint when there is none) per the game's ``google_play.player_ids``."""
    if player_ids != PLAYER_IDS_ACCOUNT:
        return None, "no player is linked to this purchase token (the receipts API links them)"
    if account_id is None:
        return None, "the purchase has no obfuscatedExternalAccountId"
    if not is_clean_id(account_id):
        return None, "the purchase's obfuscatedExternalAccountId is not a usable player id"
    return account_id, ""


def _check_token(token) -> str:
    if not isinstance(token, str) or not 0 < len(token) <= MAX_KEY or not token.isprintable():
        raise ValidationError({"purchaseToken": [f"must be 1-{MAX_KEY} printable characters"]})
    return token


def _environment(test: bool) -> str:
    return "sandbox" if test else "production"


def _with_player(detail: dict, player_id, account_id, player_ids) -> tuple[str | None, dict]:
    hint = ""
    if player_id is None:
        player_id, hint = _player(account_id, player_ids)
    if hint:
        detail["player_hint"] = hint
    return player_id, detail


def purchase(token: str, state: ProductState, *, player_ids: str = PLAYER_IDS_LINKED, player_id: str | None = None,
             notification: DeveloperNotification | None = None) -> Purchase:
    """A one-time product purchase to grant, keyed by its purchase token. ``state``: the Publisher API's
    answer; only a PURCHASED one is granted (ValidationError otherwise: never a PENDING one).
    ``player_id``: the player the studio's backend named (receipts API), else per ``player_ids``."""
    _check_token(token)
    if state.state != PURCHASED:
        raise ValidationError(f"only a PURCHASED purchase is granted; this one is {state.state}")
    detail = {"order_id": state.order_id, "obfuscated_account_id": state.obfuscated_account_id,
              "acknowledged": state.acknowledged, "consumed": state.consumed, "test": state.test,
              "notification_type": notification.notification_type if notification else None,
              "sku": notification.sku if notification else None}
    player_id, detail = _with_player(detail, player_id, state.obfuscated_account_id, player_ids)
    return Purchase(source=SOURCE, transaction_id=token, player_id=player_id, environment=_environment(state.test),
                    lines=[dict(line) for line in state.lines], payment_ref=token, detail=detail,
                    extra_refs=(state.order_id,) if state.order_id else (),   # the GPA.… id a buyer quotes
                    player_keys=(("purchase_token", token),), player_key=token)


def subscription_period(token: str, state: SubscriptionState, *, player_ids: str = PLAYER_IDS_LINKED,
                        player_id: str | None = None, notification: DeveloperNotification | None = None) -> Purchase:
    """A paid subscription period to grant, keyed by its order id (each renewal is a new order on the
    same purchase token; the token is the player key). ValidationError when no period is paid."""
    _check_token(token)
    if not state.paid:
        raise ValidationError(f"no paid period to grant (subscription {state.state}, latest order "
                              f"{state.latest_order_id or 'none'})")
    order_id = state.latest_order_id
    if len(order_id) > MAX_KEY or not order_id.isprintable():
        raise ValidationError({"latestSuccessfulOrderId": [f"must be 1-{MAX_KEY} printable characters"]})
    detail = {"purchase_token": token, "subscription_state": state.state, "test": state.test,
              "obfuscated_account_id": state.obfuscated_account_id, "acknowledged": state.acknowledged,
              "linked_purchase_token": state.linked_purchase_token,
              "notification_type": notification.notification_type if notification else None}
    player_id, detail = _with_player(detail, player_id, state.obfuscated_account_id, player_ids)
    return Purchase(source=SOURCE, transaction_id=order_id, player_id=player_id, environment=_environment(state.test),
                    lines=[dict(line) for line in state.lines], payment_ref=order_id, detail=detail,
                    player_keys=(("purchase_token", token),), player_key=token)


def voided_from_notification(n: DeveloperNotification) -> dict:
    """A ``voidedPurchaseNotification`` as a ``voided`` dict. It carries no quantity: a quantity-based
    partial refund (refund_type 2) is known only from the voidedpurchases list."""
    if n.kind != "voided":
        raise ValueError(f"not a voided purchase notification ({n.kind})")
    return {"purchase_token": n.purchase_token, "order_id": n.order_id, "voided_quantity": None,
            "refund_type": n.refund_type, "voided_time_ms": int(n.event_time_millis), "voided_reason": None,
            "voided_source": None, "product_type": n.product_type}


def _reversal_key(token: str, *rest) -> str:
    """``voided:<token>:<rest...>``; a token too long for the column is replaced by its SHA-256."""
    key = ":".join(["voided", token, *rest])
    if len(key) > MAX_KEY:
        key = ":".join(["voided", "sha256-" + hashlib.sha256(token.encode()).hexdigest(), *rest])
    return key


def voided_reversal(item: dict, purchased_quantity: int, *, subscription: bool | None = None,
                    previously_voided: int = 0) -> Reversal:
    """A refund / chargeback (a ``voided`` or ``voided_from_notification`` dict) as a Reversal of the
    purchase it names: the purchase token for a one-time product, the period's order id for a
    subscription (``subscription``: defaults to the notification's productType; the voided list does not
    say, so the caller tells).

    A full refund (refund_type 1): ``amount`` None, key ``voided:<token>:<orderId>:all`` — the same from
    the notification and from the list, so it takes effect once. A quantity-based partial refund: its
    ``voided_quantity`` is that one refund's units, so ``amount`` is ``previously_voided`` (units taken by
    earlier partial refunds of the purchase) plus it, capped at ``total`` = ``purchased_quantity``; the key
    carries the refund's units and voided time, so each refund takes effect once."""
    token, order_id = item.get("purchase_token"), item.get("order_id")
    _check_token(token)
    if subscription is None and item.get("product_type") in (PRODUCT_SUBSCRIPTION, PRODUCT_ONE_TIME):
        subscription = item["product_type"] == PRODUCT_SUBSCRIPTION
    if subscription is None:
        raise ValidationError("say whether the voided purchase is a subscription (the voided list does not)")
    if subscription and not order_id:
        raise ValidationError({"orderId": ["a voided subscription period is named by its order id"]})
    ref = order_id if subscription else token
    detail = {"purchase_token": token, "order_id": order_id, "refund_type": item.get("refund_type"),
              "refund_quantity": item.get("voided_quantity"), "voided_time_ms": item.get("voided_time_ms"),
              "voided_reason": item.get("voided_reason"), "voided_source": item.get("voided_source"),
              "subscription": subscription}
    quantity = item.get("voided_quantity")
    if item.get("refund_type") == REFUND_QUANTITY and quantity is None:
        raise ValidationError("a quantity-based partial refund needs its voidedQuantity: list voidedpurchases "
                              "with includeQuantityBasedPartialRefund=true")
    if quantity is None:
        return Reversal(source=SOURCE, key=_reversal_key(token, order_id or "", "all"), ref=ref, kind="refund",
                        amount=None, total=purchased_quantity, detail=detail)
    amount = min(previously_voided + quantity, purchased_quantity)
    key = _reversal_key(token, order_id or "", str(quantity), str(item.get("voided_time_ms")))
    return Reversal(source=SOURCE, key=key, ref=ref, kind="refund", amount=amount, total=purchased_quantity,
                    detail=detail)
