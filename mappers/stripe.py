"""Stripe events -> canonical purchases and reversals. Pure: no I/O.

Facts: ``../shared/protocols/stores.md`` (Stripe). Stripe adds fields over time, so unknown
fields are ignored; the fields we rely on are checked and a payload without them is refused.
"""
from __future__ import annotations

from dataclasses import dataclass

from marshmallow import EXCLUDE, Schema, ValidationError, fields, validate

from mappers import stripe_reversals
from mappers.accelbyte import is_clean_id
from mappers.canonical import Purchase
from mappers.money import from_minor, price_fields

SOURCE = "stripe"
PAID = ("paid", "no_payment_required")
LOOKUP_CHECKOUT = "stripe:checkout_session"
NAMESPACE_KEY = "kraty_namespace"   # optional session metadata: the game a shared Stripe account sold for
SKU_KEY = "kraty_sku"               # PaymentIntent metadata of a direct (non-Checkout) purchase
QUANTITY_KEY = "kraty_quantity"

CHECKOUT_COMPLETED = "checkout.session.completed"
ASYNC_SUCCEEDED = "checkout.session.async_payment_succeeded"
ASYNC_FAILED = "checkout.session.async_payment_failed"
EXPIRED = "checkout.session.expired"
PI_SUCCEEDED = "payment_intent.succeeded"
# refunds and disputes: mappers/stripe_reversals.py
HANDLED = frozenset({CHECKOUT_COMPLETED, ASYNC_SUCCEEDED, ASYNC_FAILED, EXPIRED, PI_SUCCEEDED}) | stripe_reversals.EVENTS

def _id():
    return fields.String(required=True, validate=validate.Length(1, 255))


def _money():
    return fields.Integer(strict=True, validate=validate.Range(0, 2**53), load_default=None, allow_none=True)


_ref = stripe_reversals.ref_of  # an id or an expanded object ({"id": ...})


class _Lenient(Schema):
    class Meta:
        unknown = EXCLUDE


class EventSchema(_Lenient):
    id = _id()
    type = fields.String(required=True, validate=validate.Length(1, 128))
    livemode = fields.Boolean(required=True, truthy={True}, falsy={False})
    created = fields.Integer(strict=True, load_default=None)
    data = fields.Dict(required=True)


class CheckoutSessionSchema(_Lenient):
    id = _id()
    payment_status = fields.String(load_default=None, allow_none=True)
    client_reference_id = fields.String(load_default=None, allow_none=True)
    metadata = fields.Dict(keys=fields.String(), values=fields.Raw(), load_default=dict)
    payment_intent = fields.Raw(load_default=None, allow_none=True)
    amount_total = _money()
    currency = fields.String(load_default=None, allow_none=True)


class PaymentIntentSchema(_Lenient):
    id = _id()
    metadata = fields.Dict(keys=fields.String(), values=fields.Raw(), load_default=dict)
    amount = _money()
    currency = fields.String(load_default=None, allow_none=True)


class PriceSchema(_Lenient):
    id = _id()
    product = fields.Raw(load_default=None, allow_none=True)
    lookup_key = fields.String(load_default=None, allow_none=True)


class LineItemSchema(_Lenient):
    id = fields.String(load_default=None)
    quantity = fields.Integer(required=True, strict=True, validate=validate.Range(1, 2_147_483_647))
    description = fields.String(load_default=None, allow_none=True)
    price = fields.Nested(PriceSchema, required=True)


# one instance each (pure objects; marshmallow keeps no state between loads): building one per call
# costs more than the load itself on the webhook's hot path
EVENT, SESSION, PAYMENT_INTENT = EventSchema(), CheckoutSessionSchema(), PaymentIntentSchema()
LINE_ITEMS = LineItemSchema(many=True)


@dataclass(frozen=True)
class Event:
    id: str
    type: str
    livemode: bool
    object: dict

    @property
    def environment(self) -> str:
        return "production" if self.livemode else "sandbox"


def parse_event(payload) -> Event:
    """A Stripe event envelope; raises ValidationError if it is not one."""
    if not isinstance(payload, dict):
        raise ValidationError("a Stripe event is a JSON object")
    data = EVENT.load(payload)
    obj = data["data"].get("object")
    if not isinstance(obj, dict):
        raise ValidationError({"data": {"object": ["missing or not an object"]}})
    return Event(data["id"], data["type"], data["livemode"], obj)


def check_object(event: Event) -> None:
    """Refuse (ValidationError) an event of a type we act on whose object lacks what we rely on."""
    if event.type in (CHECKOUT_COMPLETED, ASYNC_SUCCEEDED, ASYNC_FAILED, EXPIRED):
        checkout_session(event.object)
    elif event.type == PI_SUCCEEDED:
        payment_intent(event.object)  # its metadata is the studio's: a mistake there fails the event, visibly
    else:
        stripe_reversals.check(event.type, event.object)


def _metadata_text(metadata: dict, key: str) -> str | None:
    value = metadata.get(key)
    return value.strip() if isinstance(value, str) and value.strip() else None


def player_of(session: dict, metadata_key: str) -> str | None:
    """``client_reference_id``, else the configured metadata key; None if neither names a usable id."""
    for value in (session.get("client_reference_id"), _metadata_text(session.get("metadata") or {}, metadata_key)):
        if isinstance(value, str) and is_clean_id(value.strip()):
            return value.strip()
    return None


def checkout_session(obj: dict) -> dict:
    data = SESSION.load(obj)
    data["payment_intent"] = _ref(data["payment_intent"])
    return data


def session_namespace(session: dict) -> str | None:
    return _metadata_text(session.get("metadata") or {}, NAMESPACE_KEY)


def purchase_from_session(session: dict, event: Event, metadata_key: str) -> Purchase:
    """A paid Checkout Session; its lines are fetched from Stripe's API when it is fulfilled."""
    return Purchase(source=SOURCE, transaction_id=session["id"], player_id=player_of(session, metadata_key),
                    environment=event.environment, lines=[], lookup=LOOKUP_CHECKOUT,
                    payment_ref=session["payment_intent"],
                    **price_fields(from_minor(session["amount_total"], session["currency"])),
                    detail={"stripe_event": event.id, "amount": session["amount_total"],
                            "currency": session["currency"],
                            "player_hint": f"no client_reference_id and no metadata[{metadata_key}]"})


def payment_intent(obj: dict) -> dict:
    return PAYMENT_INTENT.load(obj)


def direct_sku(pi: dict) -> tuple[str, int] | None:
    """(SKU, quantity) a direct PaymentIntent purchase names in its metadata, or None."""
    sku = _metadata_text(pi["metadata"], SKU_KEY)
    if sku is None:
        return None
    raw = _metadata_text(pi["metadata"], QUANTITY_KEY) or "1"
    if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= 10_000:
        raise ValidationError({"metadata": {QUANTITY_KEY: ["must be an integer from 1 to 10000"]}})
    return sku, int(raw)


def purchase_from_payment_intent(pi: dict, event: Event, metadata_key: str) -> Purchase:
    sku, quantity = direct_sku(pi)
    return Purchase(source=SOURCE, transaction_id=pi["id"], player_id=player_of(pi, metadata_key),
                    environment=event.environment, lines=[{"itemSku": sku, "quantity": quantity}],
                    payment_ref=pi["id"], **price_fields(from_minor(pi["amount"], pi["currency"])),
                    detail={"stripe_event": event.id, "amount": pi["amount"], "currency": pi["currency"],
                            "player_hint": f"no metadata[{metadata_key}] on the PaymentIntent"})


def lines_from_line_items(items: list[dict]) -> list[dict]:
    """Checkout line items -> order lines naming the price id, product id and lookup key (tried in that order)."""
    loaded = LINE_ITEMS.load(items)
    return [{"store": SOURCE, "price": item["price"]["id"], "product": _ref(item["price"]["product"]),
             "lookup_key": item["price"]["lookup_key"], "quantity": item["quantity"],
             "description": item["description"]} for item in loaded]
