"""Rows of a past-purchases export, in the formats a studio has, turned into one canonical row.

Formats (docs/migration.md has the mapping):

- ``plain``: kraty-bridge's own columns (:class:`ImportRow`), as CSV with a header or JSON Lines;
- ``revenuecat``: RevenueCat's Scheduled Data Export transactions feed (CSV, comma or semicolon delimited).

Each format maps one raw row (a dict of strings or JSON values) to the canonical fields; :class:`ImportRow`
then validates it. A problem is the row's own: :class:`RowError` says why, and the other rows go on.
"""
from __future__ import annotations

from datetime import UTC, datetime

from marshmallow import RAISE, Schema, ValidationError, fields, validate, validates_schema

from mappers.accelbyte import is_clean_id
from middleware.ledger.storable import MESSAGE, unstorable

STORES = ("stripe", "app_store", "google_play")
GRANTED, REFUNDED = "granted", "refunded"
FORMATS = ("plain", "revenuecat")
MAX_ROWS = 1000  # per call: a POST /v1/imports, one batch of the CLI
ANONYMOUS_RC = "$RCAnonymousID:"
RC_STORES = {"app_store": "app_store", "play_store": "google_play", "stripe": "stripe"}


class RowError(Exception):
    """A row that cannot be imported, and why."""


def _clean(value: str) -> None:
    if not is_clean_id(value):
        raise ValidationError("1-128 printable characters without spaces")


def _id(required: bool = False):
    return fields.String(required=required, validate=_clean)


class PurchaseTime(fields.DateTime):
    """ISO 8601; without an offset the time is UTC (RevenueCat's ``2023-01-01 08:27:06``)."""

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, str):
            raise ValidationError("an ISO 8601 time")
        try:
            parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            raise ValidationError("an ISO 8601 time, e.g. 2026-01-31T12:00:00Z") from None
        return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).astimezone(UTC)


class ImportRow(Schema):
    """One past purchase, granted (and perhaps refunded) by the studio's previous system."""

    class Meta:
        unknown = RAISE

    store = fields.String(required=True, validate=validate.OneOf(STORES))
    # the bridge's order key: Apple transactionId, Google purchase token (one-time product) or order id (a
    # subscription period), Stripe Checkout Session or PaymentIntent id
    transaction_id = _id()
    original_transaction_id = _id()  # Apple: links later transactions of the same purchase to the player
    purchase_token = _id()           # Google Play
    payment_intent = _id()           # Stripe: what refunds and disputes name
    charge = _id()                   # Stripe: a charge without a PaymentIntent (older integrations)
    player_id = _id(required=True)
    sku = fields.String(validate=validate.Length(1, 64))         # a catalog SKU...
    product_id = fields.String(validate=validate.Length(1, 255))  # ...or the store's product (price) id
    quantity = fields.Integer(load_default=1, strict=False, validate=validate.Range(1, 10_000))
    price = fields.Decimal(as_string=True, allow_none=True, places=None, validate=validate.Range(0, 10**12))
    currency = fields.String(allow_none=True, validate=validate.Regexp(r"^[A-Za-z]{3}$", error="an ISO 4217 code"))
    purchased_at = PurchaseTime(required=True)
    state = fields.String(load_default=GRANTED, validate=validate.OneOf((GRANTED, REFUNDED)))
    environment = fields.String(load_default="production", validate=validate.OneOf(("production", "sandbox")))
    subscription = fields.Boolean(load_default=False)  # Google Play: a subscription period, keyed by its order id

    @validates_schema
    def _ids(self, data, **kwargs):
        if ("sku" in data) == ("product_id" in data):
            raise ValidationError("give exactly one of sku (a catalog SKU) and product_id (the store's id)", "sku")
        store = data.get("store")
        if store == "google_play" and "transaction_id" not in data:
            if "purchase_token" not in data:
                raise ValidationError("a Google Play purchase needs its purchase_token", "purchase_token")
        elif "transaction_id" not in data:
            raise ValidationError("required", "transaction_id")
        if store == "google_play" and not data.get("subscription") and "purchase_token" not in data \
                and data.get("transaction_id", "").startswith("GPA."):
            raise ValidationError("an order id: the bridge keys a one-time product by its purchase token (give "
                                  "purchase_token; a subscription period says subscription=true)", "purchase_token")
        if store == "google_play" and data.get("subscription") and "transaction_id" not in data:
            raise ValidationError("a subscription period is keyed by its order id", "transaction_id")
        if store != "stripe" and ("payment_intent" in data or "charge" in data):
            raise ValidationError("only a Stripe purchase has a PaymentIntent or charge", "payment_intent")


SCHEMA = ImportRow()


def _present(raw: dict) -> dict:
    """Drop empty cells (a CSV has no null) and JSON nulls; trim text."""
    out = {}
    for key, value in raw.items():
        if isinstance(value, str):
            value = value.strip()
        if value not in (None, ""):
            out[key] = value
    return out


def _flag(value) -> bool:
    return str(value).strip().lower() in ("true", "t", "1", "yes")


def _revenuecat_player(raw: dict) -> str:
    for column in ("rc_original_app_user_id", "rc_last_seen_app_user_id_alias"):
        value = (raw.get(column) or "").strip()
        if value and not value.startswith(ANONYMOUS_RC):
            return value
    raise RowError("an anonymous RevenueCat customer ($RCAnonymousID): no player id of the game's own")


def from_revenuecat(raw: dict) -> dict:
    """A row of RevenueCat's transactions feed -> the canonical columns (docs/migration.md)."""
    raw = _present(raw)
    store = RC_STORES.get(raw.get("store", ""))
    if store is None:
        raise RowError(f"RevenueCat store {raw.get('store', '(none)')!r} is not one the bridge takes "
                       f"({', '.join(RC_STORES)})")
    txn = raw.get("store_transaction_id")
    row = {"store": store, "transaction_id": txn, "player_id": _revenuecat_player(raw),
           "product_id": raw.get("product_identifier"), "purchased_at": raw.get("start_time"),
           "currency": raw.get("purchased_currency"),
           "price": raw.get("purchase_price_in_purchased_currency") or raw.get("price_in_purchased_currency"),
           "state": REFUNDED if raw.get("refunded_at") else GRANTED,
           "environment": "sandbox" if _flag(raw.get("is_sandbox", "false")) else "production"}
    original = raw.get("original_store_transaction_id")
    if store == "app_store" and original:
        row["original_transaction_id"] = original
    if store == "google_play" and not _flag(raw.get("is_auto_renewable", "false")):
        raise RowError("a Google Play one-time product: RevenueCat's export has its order id but not its purchase "
                       "token, which the bridge keys it by; import it with the plain format")
    if store == "google_play":
        row["subscription"] = True  # a period, keyed by its order id as the bridge keys live renewals
    if store == "stripe" and txn and txn.startswith("pi_"):
        row["payment_intent"] = txn
    return {key: value for key, value in row.items() if value is not None}


def canonical(raw, fmt: str) -> dict:
    """A validated canonical row, or RowError saying what is wrong with it."""
    if not isinstance(raw, dict):
        raise RowError("a row must be an object")
    if unstorable(raw):
        raise RowError(f"text the ledger cannot store: {MESSAGE}")
    data = from_revenuecat(raw) if fmt == "revenuecat" else _present(raw)
    try:
        row = SCHEMA.load(data)
    except ValidationError as exc:
        raise RowError(_first_problem(exc.messages)) from None
    if row["store"] == "google_play" and not row["subscription"] and "purchase_token" in row:
        # a one-time product is keyed by its token, as live notifications key it; an order id given beside it is kept
        if row.get("transaction_id", row["purchase_token"]) != row["purchase_token"]:
            row["order_id"] = row["transaction_id"]
        row["transaction_id"] = row["purchase_token"]
    if row.get("currency"):
        row["currency"] = row["currency"].upper()
    return row


def _first_problem(messages) -> str:
    if isinstance(messages, dict):
        parts = []
        for key, value in messages.items():
            text = value[0] if isinstance(value, list) and value else value
            parts.append(f"{key}: {text}" if key != "_schema" else str(text))
        return "; ".join(str(part) for part in parts)
    return str(messages)
