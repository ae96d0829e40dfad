"""App Store Server Notifications V2 and StoreKit 2 transactions (decoded, already verified by
``middleware.stores.app_store_verify``) -> canonical purchases and reversals. Pure: no I/O.

Facts: ``../shared/protocols/stores.md`` (App Store). Grants: ``ONE_TIME_CHARGE``, ``SUBSCRIBED``,
``DID_RENEW`` (each renewal is a new transactionId). Take back: ``REFUND``, ``REVOKE`` (family sharing
lost). Give again: ``REFUND_REVERSED``. ``TEST``: change nothing. Everything else is recorded only.
The fulfilment key is the transaction's ``transactionId``; an order line names the ``productId``, which
the catalog's ``store_ids.app_store`` resolves. Apple adds fields over time, so unknown fields are
ignored; the fields we rely on are checked and a payload without them is refused (ValidationError).
"""
from __future__ import annotations

import uuid

from marshmallow import EXCLUDE, Schema, ValidationError, fields, validate

from mappers.accelbyte import is_clean_id
from mappers.canonical import Purchase, Reversal
from mappers.money import from_milli, price_fields

SOURCE = "app_store"
GRANT_TYPES = frozenset({"ONE_TIME_CHARGE", "SUBSCRIBED", "DID_RENEW"})
REVERSAL_KINDS = {"REFUND": "refund", "REVOKE": "refund", "REFUND_REVERSED": "refund_reversed"}
TEST = "TEST"
GRANT, REVERSE, TEST_MARKER, RECORD = "grant", "reverse", "test", "record"
PLAYER_IDS_LINKED, PLAYER_IDS_TOKEN = "linked", "app_account_token"
ENVIRONMENTS = {"Production": "production", "Sandbox": "sandbox"}
# a transaction's offerType: the price charged is an offer the studio configured in App Store Connect, signed by
# Apple, so it is accepted as paid in full (middleware/price_check.py)
OFFER_TYPES = {1: "introductory", 2: "promotional", 3: "offer_code", 4: "win_back"}


def _id(required: bool = True):
    kwargs = {"required": True} if required else {"load_default": None, "allow_none": True}
    return fields.String(validate=validate.Length(1, 128), **kwargs)


class _Lenient(Schema):
    class Meta:
        unknown = EXCLUDE


class NotificationSchema(_Lenient):
    notificationType = fields.String(required=True, validate=validate.Length(1, 64))
    subtype = fields.String(load_default=None, allow_none=True)
    notificationUUID = _id()
    signedDate = fields.Integer(strict=True, load_default=None, allow_none=True)


class TransactionSchema(_Lenient):
    transactionId = _id()
    originalTransactionId = _id(required=False)
    productId = fields.String(required=True, validate=validate.Length(1, 255))
    quantity = fields.Integer(strict=True, load_default=1, allow_none=True, validate=validate.Range(1, 2_147_483_647))
    type = fields.String(load_default=None, allow_none=True)
    appAccountToken = fields.String(load_default=None, allow_none=True)
    environment = fields.String(required=True, validate=validate.OneOf(tuple(ENVIRONMENTS)))
    revocationDate = fields.Integer(strict=True, load_default=None, allow_none=True)
    revocationReason = fields.Integer(strict=True, load_default=None, allow_none=True)
    price = fields.Integer(strict=True, load_default=None, allow_none=True)
    currency = fields.String(load_default=None, allow_none=True)
    offerType = fields.Integer(strict=True, load_default=None, allow_none=True)  # 1 intro, 2 promo, 3 code, 4 win-back


_TRANSACTION, _NOTIFICATION = TransactionSchema(), NotificationSchema()  # built once: pure, no state between loads


def account_token(value: str | None) -> str | None:
    """An appAccountToken as the lower-case canonical UUID string, or None if it is not a UUID."""
    try:
        return str(uuid.UUID(value)) if isinstance(value, str) else None
    except ValueError:
        return None


def _player(tx: dict, player_ids: str) -> tuple[str | None, str]:
    """(player id, hint when there is none) per the game's ``app_store.player_ids``."""
    if player_ids != PLAYER_IDS_TOKEN:
        return None, "no player is linked to this transaction (the receipts API links them)"
    token = account_token(tx["appAccountToken"])
    if token is None or not is_clean_id(token):
        return None, ("the transaction has no appAccountToken" if tx["appAccountToken"] is None
                      else "the transaction's appAccountToken is not a UUID")
    return token, ""


def transaction(payload: dict) -> dict:
    """A decoded transaction, checked (ValidationError if a field we rely on is missing or wrong)."""
    if not isinstance(payload, dict):
        raise ValidationError("a transaction is a JSON object")
    data = _TRANSACTION.load(payload)
    data["quantity"] = data["quantity"] or 1
    return data


def purchase(payload: dict, *, player_ids: str = PLAYER_IDS_LINKED, player_id: str | None = None,
             notification: dict | None = None) -> Purchase:
    """A transaction to grant: from a notification (``notification``: the checked notification) or
    from the receipts API (``player_id``: the player the studio's backend named, if any)."""
    tx = transaction(payload)
    hint = ""
    if player_id is None:
        player_id, hint = _player(tx, player_ids)
    detail = {
        "original_transaction_id": tx["originalTransactionId"], "app_account_token": account_token(tx["appAccountToken"]) or tx["appAccountToken"],
        "notification_type": notification["notificationType"] if notification else None,
        "subtype": notification["subtype"] if notification else None, "product_type": tx["type"],
        "price": tx["price"], "currency": tx["currency"],
    }
    if notification:
        detail["notification_uuid"] = notification["notificationUUID"]
    if hint:
        detail["player_hint"] = hint
    keys = [("transaction", tx["transactionId"]), ("original_transaction", tx["originalTransactionId"]),
            ("account_token", account_token(tx["appAccountToken"]))]
    return Purchase(source=SOURCE, transaction_id=tx["transactionId"], player_id=player_id,
                    environment=ENVIRONMENTS[tx["environment"]],
                    lines=[{"store": SOURCE, "product": tx["productId"], "quantity": tx["quantity"]}],
                    payment_ref=tx["transactionId"], detail=detail,
                    **price_fields(from_milli(tx["price"], tx["currency"])), price_check="app_store",
                    offer=OFFER_TYPES.get(tx["offerType"], str(tx["offerType"])) if tx["offerType"] else None,
                    player_keys=tuple((kind, value) for kind, value in keys if value),
                    player_key=tx["originalTransactionId"])


def reversal(payload: dict, notification: dict) -> Reversal:
    """REFUND / REVOKE (take the whole transaction back) or REFUND_REVERSED (give it again). Each
    notification is its own event, so the key carries its notificationUUID: a second refund after a
    reversed one takes effect too."""
    tx = transaction(payload)
    kind = REVERSAL_KINDS[notification["notificationType"]]
    return Reversal(source=SOURCE, key=f"{kind}:{tx['transactionId']}:{notification['notificationUUID']}",
                    ref=tx["transactionId"], kind=kind, amount=None, total=None, currency=tx["currency"],
                    detail={"notification_type": notification["notificationType"],
                            "subtype": notification["subtype"], "notification_uuid": notification["notificationUUID"],
                            "original_transaction_id": tx["originalTransactionId"],
                            "revocation_date": tx["revocationDate"], "revocation_reason": tx["revocationReason"]})


def classify(notification: dict, transaction_payload: dict | None = None, player_ids: str = PLAYER_IDS_LINKED
             ) -> tuple[str, Purchase | Reversal | None]:
    """What a verified notification asks for: ``("grant", Purchase)``, ``("reverse", Reversal)``,
    ``("test", None)`` or ``("record", None)``. ``transaction_payload``: its decoded
    ``data.signedTransactionInfo``; ``player_ids``: the game's ``app_store.player_ids``.
    Raises ValidationError when a notification that grants or takes back lacks what that needs."""
    if not isinstance(notification, dict):
        raise ValidationError("a notification is a JSON object")
    checked = _NOTIFICATION.load(notification)
    kind = checked["notificationType"]
    if kind == TEST:
        return TEST_MARKER, None
    if kind not in GRANT_TYPES and kind not in REVERSAL_KINDS:
        return RECORD, None
    if transaction_payload is None:
        raise ValidationError({"data": {"signedTransactionInfo": [f"a {kind} notification carries a transaction"]}})
    if kind in GRANT_TYPES:
        return GRANT, purchase(transaction_payload, player_ids=player_ids, notification=checked)
    return REVERSE, reversal(transaction_payload, checked)
