"""App Store Server Notifications V2 and StoreKit 2 transactions (decoded, already verified by
``middleware.stores.app_store_verify``) -> canonical purchases and reversals. Pure: no I/O.

Facts: ``../shared/protocols/stores.md`` (App Store). Grants: ``ONE_TIME_CHARGE``, ``SUBSCRIBED``,
``DID_RENEW`` (each renewal is a new transactionId), ``DID_CHANGE_RENEWAL_PREF`` with subtype ``UPGRADE``
(charged at once: its transaction is the new, paid one; a ``DOWNGRADE`` waits for the next renewal and is
recorded only). Take back: ``REFUND``, ``REVOKE`` (family sharing lost); a ``REFUND_PRORATED`` transaction
carries the refunded share (``revocationPercentage``, milliunits). Give again: ``REFUND_REVERSED``.
``TEST``: change nothing. Everything else is recorded only.
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
GRANT_SUBTYPES = frozenset({("DID_CHANGE_RENEWAL_PREF", "UPGRADE")})  # charged at once: a new paid transaction
REVERSAL_KINDS = {"REFUND": "refund", "REVOKE": "refund", "REFUND_REVERSED": "refund_reversed"}
TEST = "TEST"
GRANT, REVERSE, TEST_MARKER, RECORD = "grant", "reverse", "test", "record"
PLAYER_IDS_LINKED, PLAYER_IDS_TOKEN = "linked", "app_account_token"
ENVIRONMENTS = {"Production": "production", "Sandbox": "sandbox"}
WHOLE = 100_000  # revocationPercentage is in milliunits: 100000 is all of it
PRORATED = "REFUND_PRORATED"
# a transaction's offerType: the price charged is an offer the studio configured in App Store Connect, signed by
# Apple, so it is accepted as paid in full (middleware/orders/price_check.py)
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
    revocationType = fields.String(load_default=None, allow_none=True)
    revocationPercentage = fields.Integer(strict=True, load_default=None, allow_none=True)
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


def grants(kind: str | None, subtype: str | None) -> bool:
    """A notification of this type (and subtype) carries a paid transaction to grant."""
    return kind in GRANT_TYPES or (kind, subtype) in GRANT_SUBTYPES


def acts(kind: str | None, subtype: str | None) -> bool:
    """A notification of this type grants, takes back or gives back (its worker has work to do)."""
    return grants(kind, subtype) or kind in REVERSAL_KINDS


def revoked_share(tx: dict) -> tuple[int | None, int | None, str]:
    """(amount, total, summary) of a refunded or revoked transaction: a ``REFUND_PRORATED`` one with a
    ``revocationPercentage`` below 100% is ``(percentage, 100000)`` milliunits; anything else is all of it
    (``None, None``). The summary says what Apple said, for the order's reason and history."""
    kind, share = tx.get("revocationType"), tx.get("revocationPercentage")
    said = [kind or "no revocationType"]
    if share is not None:
        said.append(f"{share / 1000:g}% refunded")
    if tx.get("revocationReason") is not None:
        said.append(f"revocationReason {tx['revocationReason']}")
    summary = f"app_store {'refund' if kind != 'FAMILY_REVOKE' else 'revocation'} of transaction " \
              f"{tx['transactionId']} ({', '.join(said)})"
    if kind == PRORATED and isinstance(share, int) and 0 < share < WHOLE:
        return share, WHOLE, summary
    return None, None, summary


def reversal(payload: dict, notification: dict) -> Reversal:
    """REFUND / REVOKE (take the transaction back: all of it, or the share a ``REFUND_PRORATED`` refunded) or
    REFUND_REVERSED (give it again). Each notification is its own event, so the key carries its
    notificationUUID: a second refund after a reversed one takes effect too."""
    tx = transaction(payload)
    kind = REVERSAL_KINDS[notification["notificationType"]]
    amount, total, summary = revoked_share(tx) if kind == "refund" else (None, None, "")
    return Reversal(source=SOURCE, key=f"{kind}:{tx['transactionId']}:{notification['notificationUUID']}",
                    ref=tx["transactionId"], kind=kind, amount=amount, total=total, currency=None,
                    detail={"notification_type": notification["notificationType"],
                            "subtype": notification["subtype"], "notification_uuid": notification["notificationUUID"],
                            "original_transaction_id": tx["originalTransactionId"],
                            "revocation_date": tx["revocationDate"], "revocation_reason": tx["revocationReason"],
                            "revocation_type": tx["revocationType"],
                            "revocation_percentage": tx["revocationPercentage"],
                            **({"summary": summary} if summary else {})})


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
    if not acts(kind, checked["subtype"]):
        return RECORD, None
    if transaction_payload is None:
        raise ValidationError({"data": {"signedTransactionInfo": [f"a {kind} notification carries a transaction"]}})
    if grants(kind, checked["subtype"]):
        return GRANT, purchase(transaction_payload, player_ids=player_ids, notification=checked)
    return REVERSE, reversal(transaction_payload, checked)
