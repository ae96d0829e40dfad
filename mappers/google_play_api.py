"""The Android Publisher API's purchase resources (answers the caller fetched) -> plain states the
Google Play mapper (``mappers.google_play``) turns into canonical purchases and reversals. Pure: no I/O.

``product_purchase_v2`` (``purchases.productsv2``), ``product_purchase_v1`` (``purchases.products``),
``subscription_v2`` (``purchases.subscriptionsv2``) and ``voided`` (one item of
``purchases.voidedpurchases.list``). Google adds fields over time, so unknown fields are ignored; the
fields we rely on are checked and a resource without them is refused (``ValidationError``).
"""
from __future__ import annotations

from dataclasses import dataclass

from marshmallow import EXCLUDE, Schema, ValidationError, fields, validate

SOURCE = "google_play"
PURCHASED, PENDING, CANCELLED = "PURCHASED", "PENDING", "CANCELLED"
V1_STATES = {0: PURCHASED, 1: CANCELLED, 2: PENDING}
V2_STATES = frozenset({PURCHASED, PENDING, CANCELLED})
UNPAID_SUBSCRIPTION_STATES = frozenset({"UNSPECIFIED", "PENDING", "PENDING_PURCHASE_CANCELED"})
REFUND_FULL, REFUND_QUANTITY = 1, 2  # voidedPurchaseNotification.refundType
MAX_QUANTITY = 2_147_483_647


class _Lenient(Schema):
    class Meta:
        unknown = EXCLUDE


def _int(choices=None, required: bool = True):
    check = validate.OneOf(choices) if choices else validate.Range(0, MAX_QUANTITY)
    kwargs = {"required": True} if required else {"load_default": None, "allow_none": True}
    return fields.Integer(strict=True, validate=check, **kwargs)


def _millis(value) -> int | None:
    """Milliseconds since the epoch, which Google writes as a string of digits (int64 in JSON)."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    if isinstance(value, str) and value.isdigit() and len(value) <= 20:
        return int(value)
    return None


@dataclass(frozen=True)
class ProductState:
    """A one-time product purchase as the Publisher API reports it."""

    state: str                       # PURCHASED | PENDING | CANCELLED
    lines: list[dict]                # [{"store": "google_play", "product": productId, "quantity": n}]
    order_id: str | None             # absent for promo-code purchases
    test: bool                       # a license tester's purchase: environment sandbox
    obfuscated_account_id: str | None
    acknowledged: bool | None = None
    consumed: bool | None = None

    @property
    def quantity(self) -> int:
        return sum(line["quantity"] for line in self.lines)


@dataclass(frozen=True)
class SubscriptionState:
    """A subscription as ``subscriptionsv2`` reports it; ``latest_order_id`` is the last paid period's order."""

    state: str                       # ACTIVE, IN_GRACE_PERIOD, ON_HOLD, PAUSED, CANCELED, EXPIRED, PENDING, ...
    lines: list[dict]                # the line items of that order, quantity 1 each
    latest_order_id: str | None
    test: bool
    obfuscated_account_id: str | None
    acknowledged: bool | None = None
    linked_purchase_token: str | None = None  # the replaced subscription's token (upgrade, downgrade, resubscribe)

    @property
    def paid(self) -> bool:
        """A period has been paid for (its order is ``latest_order_id``): it may be granted."""
        return self.latest_order_id is not None and self.state not in UNPAID_SUBSCRIPTION_STATES


def _line(product: str, quantity: int) -> dict:
    return {"store": SOURCE, "product": product, "quantity": quantity}


def _optional(length: int = 255):
    return fields.String(load_default=None, allow_none=True, validate=validate.Length(1, length))


def _quantity():
    return fields.Integer(strict=True, load_default=1, allow_none=True, validate=validate.Range(1, MAX_QUANTITY))


class _OfferSchema(_Lenient):
    quantity = _quantity()
    consumptionState = fields.String(load_default=None, allow_none=True)


class _LineItemV2Schema(_Lenient):
    productId = fields.String(required=True, validate=validate.Length(1, 255))
    productOfferDetails = fields.Nested(_OfferSchema, load_default=None, allow_none=True)


class _StateContextSchema(_Lenient):
    purchaseState = fields.String(required=True, validate=validate.OneOf(sorted(V2_STATES)))


class _ProductV2Schema(_Lenient):
    productLineItem = fields.List(fields.Nested(_LineItemV2Schema), required=True, validate=validate.Length(min=1))
    purchaseStateContext = fields.Nested(_StateContextSchema, required=True)
    testPurchaseContext = fields.Dict(load_default=None, allow_none=True)
    orderId = _optional()
    obfuscatedExternalAccountId = _optional(1024)
    acknowledgementState = fields.String(load_default=None, allow_none=True)


class _ProductV1Schema(_Lenient):
    purchaseState = _int(tuple(V1_STATES))
    consumptionState = _int((0, 1), required=False)
    acknowledgementState = _int((0, 1), required=False)
    purchaseType = _int(required=False)
    orderId = _optional()
    productId = _optional()
    quantity = _quantity()
    obfuscatedExternalAccountId = _optional(1024)


class _SubLineSchema(_Lenient):
    productId = fields.String(required=True, validate=validate.Length(1, 255))
    latestSuccessfulOrderId = _optional()


class _AccountIdsSchema(_Lenient):
    obfuscatedExternalAccountId = _optional(1024)


class _SubscriptionV2Schema(_Lenient):
    subscriptionState = fields.String(required=True, validate=validate.Length(1, 64))
    lineItems = fields.List(fields.Nested(_SubLineSchema), required=True, validate=validate.Length(min=1))
    latestOrderId = _optional()
    testPurchase = fields.Dict(load_default=None, allow_none=True)
    externalAccountIdentifiers = fields.Nested(_AccountIdsSchema, load_default=None, allow_none=True)
    acknowledgementState = fields.String(load_default=None, allow_none=True)
    linkedPurchaseToken = _optional(2048)


_SCHEMAS: dict[type, Schema] = {}  # one instance per schema class, built on first use


def _load(schema: type[Schema], payload, what: str) -> dict:
    if not isinstance(payload, dict):
        raise ValidationError(f"{what} is a JSON object")
    instance = _SCHEMAS.get(schema) or _SCHEMAS.setdefault(schema, schema())
    return instance.load(payload)


def _acknowledged(value: str | None) -> bool | None:
    return {"ACKNOWLEDGEMENT_STATE_ACKNOWLEDGED": True, "ACKNOWLEDGEMENT_STATE_PENDING": False}.get(value)


def product_purchase_v2(payload) -> ProductState:
    """``purchases.productsv2.getproductpurchasev2`` -> ``ProductState`` (ValidationError if unusable)."""
    data = _load(_ProductV2Schema, payload, "a ProductPurchaseV2")
    lines, consumed = [], set()
    for item in data["productLineItem"]:
        offer = item["productOfferDetails"] or {}
        lines.append(_line(item["productId"], offer.get("quantity") or 1))
        consumed.add(offer.get("consumptionState"))
    return ProductState(
        state=data["purchaseStateContext"]["purchaseState"], lines=lines, order_id=data["orderId"],
        test=data["testPurchaseContext"] is not None, obfuscated_account_id=data["obfuscatedExternalAccountId"],
        acknowledged=_acknowledged(data["acknowledgementState"]),
        consumed=True if consumed == {"CONSUMPTION_STATE_CONSUMED"} else
        False if "CONSUMPTION_STATE_YET_TO_BE_CONSUMED" in consumed else None)


def product_purchase_v1(payload, sku: str) -> ProductState:
    """``purchases.products.get`` (v1) for ``sku`` -> ``ProductState``: purchaseState 0/1/2 is
    PURCHASED/CANCELLED/PENDING, purchaseType 0 a test purchase, quantity 1 when absent."""
    data = _load(_ProductV1Schema, payload, "a ProductPurchase")
    return ProductState(
        state=V1_STATES[data["purchaseState"]], lines=[_line(data["productId"] or sku, data["quantity"] or 1)],
        order_id=data["orderId"], test=data["purchaseType"] == 0,
        obfuscated_account_id=data["obfuscatedExternalAccountId"],
        acknowledged=None if data["acknowledgementState"] is None else data["acknowledgementState"] == 1,
        consumed=None if data["consumptionState"] is None else data["consumptionState"] == 1)


def subscription_v2(payload) -> SubscriptionState:
    """``purchases.subscriptionsv2.get`` -> ``SubscriptionState``. The period's order is the first line
    item's ``latestSuccessfulOrderId`` (the deprecated top-level ``latestOrderId`` when there is none);
    its lines are the line items of that order."""
    data = _load(_SubscriptionV2Schema, payload, "a SubscriptionPurchaseV2")
    items = data["lineItems"]
    order_id = next((i["latestSuccessfulOrderId"] for i in items if i["latestSuccessfulOrderId"]), None) \
        or data["latestOrderId"]
    lines = [_line(i["productId"], 1) for i in items if i["latestSuccessfulOrderId"] in (None, order_id)]
    accounts = data["externalAccountIdentifiers"] or {}
    return SubscriptionState(
        state=data["subscriptionState"].removeprefix("SUBSCRIPTION_STATE_"), lines=lines, latest_order_id=order_id,
        test=data["testPurchase"] is not None, obfuscated_account_id=accounts.get("obfuscatedExternalAccountId"),
        acknowledged=_acknowledged(data["acknowledgementState"]), linked_purchase_token=data["linkedPurchaseToken"])


class _VoidedItemSchema(_Lenient):
    purchaseToken = fields.String(required=True, validate=validate.Length(1, 2048))
    orderId = _optional()
    voidedTimeMillis = fields.Raw(load_default=None, allow_none=True)
    voidedQuantity = fields.Integer(strict=True, load_default=None, allow_none=True,
                                    validate=validate.Range(1, MAX_QUANTITY))
    voidedReason = _int(required=False)
    voidedSource = _int(required=False)


def voided(payload) -> dict:
    """One ``voidedPurchases`` item -> ``{purchase_token, order_id, voided_quantity (None: the whole
    purchase), refund_type (1 full, 2 quantity-based partial), voided_time_ms, voided_reason,
    voided_source, product_type (None: the list does not say)}``. ``voidedQuantity`` is the quantity of
    that one partial refund (list with ``includeQuantityBasedPartialRefund=true`` to get them)."""
    data = _load(_VoidedItemSchema, payload, "a VoidedPurchase")
    quantity = data["voidedQuantity"]
    return {"purchase_token": data["purchaseToken"], "order_id": data["orderId"], "voided_quantity": quantity,
            "refund_type": REFUND_QUANTITY if quantity is not None else REFUND_FULL,
            "voided_time_ms": _millis(data["voidedTimeMillis"]), "voided_reason": data["voidedReason"],
            "voided_source": data["voidedSource"], "product_type": None}
