"""AccelByte-compatible fulfilment shapes: request validation in, results out. Pure: no I/O."""
from __future__ import annotations

from marshmallow import RAISE, Schema, ValidationError, fields, validate, validates_schema

INT32_MAX = 2_147_483_647
ENTITLEMENT_ORIGINS = ("Steam", "Epic", "Playstation", "Xbox", "Nintendo", "IOS", "GooglePlay", "Oculus", "Twitch",
                       "Other", "System")
MAX_ID = 128
MAX_ITEMS = 100
MAX_DEPTH = 16  # metadata nesting


def is_clean_id(value: str) -> bool:
    """1-128 printable characters, no whitespace: what we accept as a user, transaction or item id."""
    return 0 < len(value) <= MAX_ID and value.isprintable() and not any(ch.isspace() for ch in value)


def _clean_id(value: str) -> None:
    if not is_clean_id(value):
        raise ValidationError(f"must be 1-{MAX_ID} printable characters without spaces")


def _shallow(value) -> None:
    """At most MAX_DEPTH levels of nesting (checked without recursion): deeper JSON cannot be stored."""
    todo = [(value, 1)]
    while todo:
        node, depth = todo.pop()
        if depth > MAX_DEPTH:
            raise ValidationError(f"nested deeper than {MAX_DEPTH} levels")
        children = node.values() if isinstance(node, dict) else node if isinstance(node, list) else ()
        todo.extend((child, depth + 1) for child in children)


def _text(max_len: int = MAX_ID):
    return fields.String(validate=validate.Length(max=max_len))


class FulfillmentItemSchema(Schema):
    class Meta:
        unknown = RAISE

    quantity = fields.Integer(required=True, strict=True, validate=validate.Range(1, INT32_MAX))
    itemId = fields.String(validate=_clean_id)
    itemSku = fields.String(validate=_clean_id)
    source = fields.String(validate=validate.Length(1, 64))
    orderNo = _text()
    startDate = fields.AwareDateTime(format="iso")
    endDate = fields.AwareDateTime(format="iso")
    duration = fields.Integer(strict=True, validate=validate.Range(1, INT32_MAX))
    origin = _text(64)
    entitlementOrigin = fields.String(validate=validate.OneOf(ENTITLEMENT_ORIGINS))
    storeId = _text()
    region = _text(64)
    language = _text(64)
    entitlementCollectionId = _text()
    metadata = fields.Dict(keys=fields.String(validate=validate.Length(max=MAX_ID)), validate=_shallow)

    @validates_schema
    def _names_an_item(self, data, **_kwargs):
        if "itemId" not in data and "itemSku" not in data:
            raise ValidationError("one of itemId or itemSku is required", "itemId")


class FulfillmentRequestSchema(Schema):
    class Meta:
        unknown = RAISE

    items = fields.List(fields.Nested(FulfillmentItemSchema), required=True,
                        validate=validate.Length(1, MAX_ITEMS, error="must hold 1 to {max} items"))


class BulkEntrySchema(FulfillmentRequestSchema):
    transactionId = fields.String(required=True, validate=_clean_id)


def flatten_errors(messages, prefix: str = "") -> list[str]:
    """marshmallow's nested error dict as ``items.0.quantity: message`` lines."""
    if isinstance(messages, list) and all(isinstance(m, str) for m in messages):
        return [f"{prefix}: {m}" if prefix else m for m in messages]
    out = []
    if isinstance(messages, dict):
        for key, value in messages.items():
            out += flatten_errors(value, f"{prefix}.{key}" if prefix else str(key))
    elif isinstance(messages, list):
        for value in messages:
            out += flatten_errors(value, prefix)
    return out


def order_lines(items: list[dict], raw_items: list[dict]) -> list[dict]:
    """The lines we store: the raw JSON as sent (dates stay strings); ``itemId`` wins over ``itemSku``."""
    lines = []
    for loaded, raw in zip(items, raw_items):
        line = dict(raw)
        if loaded.get("itemId"):
            line.pop("itemSku", None)
        lines.append(line)
    return lines


def error_entity(code: int, message: str, variables: dict | None = None) -> dict:
    body = {"errorCode": code, "errorMessage": message}
    if variables:
        body["messageVariables"] = {k: str(v) for k, v in variables.items()}
    return body
