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

import base64
import binascii
import hashlib
import json
from dataclasses import dataclass, field

from marshmallow import ValidationError, fields, validate

from mappers.accelbyte import is_clean_id
from mappers.canonical import Purchase, Reversal
from mappers.google_play_api import (
    CANCELLED,
    PENDING,
    PURCHASED,
    REFUND_FULL,
    REFUND_QUANTITY,
    SOURCE,
    ProductState,
    SubscriptionState,
    _int,
    _Lenient,
    _millis,
    product_purchase_v1,
    product_purchase_v2,
    subscription_v2,
    voided,
)

__all__ = [  # with the Publisher API side (mappers.google_play_api), re-exported
    "CANCELLED", "PENDING", "PURCHASED", "SOURCE", "DeveloperNotification", "Envelope", "NotificationError",
    "ProductState", "SubscriptionState", "notification", "product_purchase_v1", "product_purchase_v2", "purchase",
    "push_envelope", "subscription_period", "subscription_v2", "voided", "voided_from_notification",
    "voided_reversal",
]

PLAYER_IDS_LINKED, PLAYER_IDS_ACCOUNT = "linked", "obfuscated_account_id"
KINDS = {"oneTimeProductNotification": "one_time", "subscriptionNotification": "subscription",
         "voidedPurchaseNotification": "voided", "testNotification": "test"}
ONE_TIME_PURCHASED, ONE_TIME_CANCELED = 1, 2
SUBSCRIPTION_TYPES = {1: "RECOVERED", 2: "RENEWED", 3: "CANCELED", 4: "PURCHASED", 5: "ON_HOLD", 6: "IN_GRACE_PERIOD",
                      7: "RESTARTED", 8: "PRICE_CHANGE_CONFIRMED", 9: "DEFERRED", 10: "PAUSED",
                      11: "PAUSE_SCHEDULE_CHANGED", 12: "REVOKED", 13: "EXPIRED", 17: "ITEMS_CHANGED",
                      18: "CANCELLATION_SCHEDULED", 19: "PRICE_CHANGE_UPDATED", 20: "PENDING_PURCHASE_CANCELED",
                      22: "PRICE_STEP_UP_CONSENT_UPDATED"}
SUBSCRIPTION_NEW_ORDER = frozenset({1, 2, 4})  # RECOVERED, RENEWED, PURCHASED: a period may have been paid for
PRODUCT_SUBSCRIPTION, PRODUCT_ONE_TIME = 1, 2  # voidedPurchaseNotification.productType
MAX_KEY = 255  # the ledger's transaction id, payment ref, player key and reversal key columns


class NotificationError(ValueError):
    """A push message's data is not a developer notification. ``reason``: bad_base64 | not_json |
    not_a_notification (the caller records the message as rejected and acknowledges it)."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason, self.message = reason, message


# ---------------------------------------------------------------- the Pub/Sub push envelope
@dataclass(frozen=True)
class Envelope:
    message_id: str      # Pub/Sub's id of the message: the inbound event's dedupe key
    publish_time: str
    data_b64: str
    attributes: dict
    subscription: str


def _text(value, limit: int = 1024) -> bool:
    return isinstance(value, str) and 0 < len(value) <= limit and value.isprintable()


def push_envelope(body) -> Envelope:
    """A push request's JSON body -> ``Envelope``; ValidationError if it is not a Pub/Sub push envelope
    (``{"message": {"data", "messageId", "publishTime", "attributes"?}, "subscription"}``; Pub/Sub also
    sends ``message_id`` / ``publish_time``, accepted in their place)."""
    if not isinstance(body, dict):
        raise ValidationError("a Pub/Sub push body is a JSON object")
    message, errors = body.get("message"), {}
    if not _text(body.get("subscription")):
        errors["subscription"] = ["is required (the push subscription's name)"]
    if not isinstance(message, dict):
        errors["message"] = ["is required (a JSON object)"]
        raise ValidationError(errors)
    message_id = message.get("messageId", message.get("message_id"))
    publish_time = message.get("publishTime", message.get("publish_time"))
    attributes = message.get("attributes", {}) or {}
    inner = {}
    if not isinstance(message_id, str) or not is_clean_id(message_id):
        inner["messageId"] = ["is required (1-128 printable characters without spaces)"]
    if not _text(publish_time, 64):
        inner["publishTime"] = ["is required (an RFC 3339 time)"]
    if not isinstance(message.get("data"), str):
        inner["data"] = ["is required (base64 of the notification)"]
    if not isinstance(attributes, dict) or not all(isinstance(k, str) and isinstance(v, str)
                                                   for k, v in attributes.items()):
        inner["attributes"] = ["must be an object of strings"]
    if inner:
        errors["message"] = inner
    if errors:
        raise ValidationError(errors)
    return Envelope(message_id, publish_time, message["data"], dict(attributes), body["subscription"])


# ---------------------------------------------------------------- the developer notification
@dataclass(frozen=True)
class DeveloperNotification:
    version: str
    package_name: str
    event_time_millis: str
    kind: str                        # one_time | subscription | voided | test | unknown
    notification_type: int | None = None  # one_time: 1 PURCHASED, 2 CANCELED; subscription: SUBSCRIPTION_TYPES
    purchase_token: str | None = None
    sku: str | None = None           # one_time
    subscription_id: str | None = None  # subscription (deprecated by Google; may be absent)
    order_id: str | None = None      # voided
    product_type: int | None = None  # voided: 1 subscription, 2 one-time
    refund_type: int | None = None   # voided: 1 full, 2 quantity-based partial
    raw: dict = field(default_factory=dict, compare=False, repr=False)


def _token():
    return fields.String(required=True, validate=validate.Length(1, 2048))


class _EventTime(fields.Field):
    """eventTimeMillis: a string of digits (an int is accepted and written as one)."""

    def _deserialize(self, value, attr, data, **kwargs):
        if _millis(value) is None:
            raise ValidationError("must be milliseconds since the epoch (a string of digits)")
        return str(value)


class _NotificationSchema(_Lenient):
    version = fields.String(required=True, validate=validate.Length(1, 32))
    packageName = fields.String(required=True, validate=validate.Length(1, 255))
    eventTimeMillis = _EventTime(required=True)


class _OneTimeSchema(_Lenient):
    notificationType = _int()
    purchaseToken = _token()
    sku = fields.String(required=True, validate=validate.Length(1, 255))


class _SubscriptionSchema(_Lenient):
    notificationType = _int()
    purchaseToken = _token()
    subscriptionId = fields.String(load_default=None, allow_none=True, validate=validate.Length(1, 255))


class _VoidedSchema(_Lenient):
    purchaseToken = _token()
    orderId = fields.String(load_default=None, allow_none=True, validate=validate.Length(1, 255))
    productType = _int((PRODUCT_SUBSCRIPTION, PRODUCT_ONE_TIME))
    refundType = _int((REFUND_FULL, REFUND_QUANTITY))


# built once (pure objects, no state between loads): building them per call costs more than the loads
_KIND_SCHEMAS = {"one_time": _OneTimeSchema(), "subscription": _SubscriptionSchema(), "voided": _VoidedSchema()}
_NOTIFICATION = _NotificationSchema()


def notification(data_b64) -> DeveloperNotification:
    """A push message's ``data`` -> ``DeveloperNotification``; ``NotificationError`` if it is not base64
    of a JSON developer notification with exactly one kind we know (none we know: kind "unknown")."""
    try:
        raw = base64.b64decode(data_b64, validate=True) if isinstance(data_b64, str) else None
    except (binascii.Error, ValueError):
        raw = None
    if raw is None:
        raise NotificationError("bad_base64", "the message data is not base64")
    try:
        payload = json.loads(raw)
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        raise NotificationError("not_json", "the message data is not JSON") from None
    if not isinstance(payload, dict):
        raise NotificationError("not_a_notification", "the message data is not a JSON object")
    try:
        head = _NOTIFICATION.load(payload)
        kinds = [kind for key, kind in KINDS.items() if key in payload]
        if len(kinds) > 1:
            raise ValidationError(f"holds {len(kinds)} notifications; a developer notification holds exactly one")
        kind = kinds[0] if kinds else "unknown"
        body = {}
        if kind in _KIND_SCHEMAS:
            key = next(key for key, name in KINDS.items() if name == kind)
            if not isinstance(payload[key], dict):
                raise ValidationError({key: ["must be a JSON object"]})
            try:
                body = _KIND_SCHEMAS[kind].load(payload[key])
            except ValidationError as exc:
                raise ValidationError({key: exc.messages}) from None
    except ValidationError as exc:
        raise NotificationError("not_a_notification", f"not a developer notification: {exc.messages}") from None
    return DeveloperNotification(
        version=head["version"], package_name=head["packageName"], event_time_millis=head["eventTimeMillis"],
        kind=kind, notification_type=body.get("notificationType"), purchase_token=body.get("purchaseToken"),
        sku=body.get("sku"), subscription_id=body.get("subscriptionId"), order_id=body.get("orderId"),
        product_type=body.get("productType"), refund_type=body.get("refundType"), raw=payload)



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
