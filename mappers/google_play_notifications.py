"""Google Play's push side: the Pub/Sub push envelope and the Real-time developer notification in its data
(``push_envelope``, ``notification``), checked and read into dataclasses. Pure: no I/O; re-exported by
``mappers.google_play``."""
from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass, field

from marshmallow import ValidationError, fields, validate

from mappers.accelbyte import is_clean_id
from mappers.google_play_api import REFUND_FULL, REFUND_QUANTITY, _int, _Lenient, _millis

KINDS = {"oneTimeProductNotification": "one_time", "subscriptionNotification": "subscription",
         "voidedPurchaseNotification": "voided", "testNotification": "test"}
SUBSCRIPTION_TYPES = {1: "RECOVERED", 2: "RENEWED", 3: "CANCELED", 4: "PURCHASED", 5: "ON_HOLD", 6: "IN_GRACE_PERIOD",
                      7: "RESTARTED", 8: "PRICE_CHANGE_CONFIRMED", 9: "DEFERRED", 10: "PAUSED",
                      11: "PAUSE_SCHEDULE_CHANGED", 12: "REVOKED", 13: "EXPIRED", 17: "ITEMS_CHANGED",
                      18: "CANCELLATION_SCHEDULED", 19: "PRICE_CHANGE_UPDATED", 20: "PENDING_PURCHASE_CANCELED",
                      22: "PRICE_STEP_UP_CONSENT_UPDATED"}
PRODUCT_SUBSCRIPTION, PRODUCT_ONE_TIME = 1, 2  # voidedPurchaseNotification.productType


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
