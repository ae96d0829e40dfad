"""Stripe events -> canonical purchases and reversals. Pure: no I/O.

Facts: ``../shared/protocols/stores.md`` (Stripe). Stripe adds fields over time, so unknown
fields are ignored; the fields we rely on are checked and a payload without them is refused.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from marshmallow import EXCLUDE, Schema, ValidationError, fields, validate

from mappers import stripe_reversals
from mappers.accelbyte import is_clean_id
from mappers.canonical import Purchase
from mappers.money import from_minor, price_fields

SOURCE = "stripe"
PAID = ("paid", "no_payment_required")
MODE_PAYMENT, MODE_SUBSCRIPTION, MODE_SETUP = "payment", "subscription", "setup"
ACCOUNT_RE = re.compile(r"acct_[A-Za-z0-9]{1,35}\Z")
LOOKUP_CHECKOUT = "stripe:checkout_session"
NAMESPACE_KEY = "kraty_namespace"   # optional session metadata: the game a shared Stripe account sold for
SKU_KEY = "kraty_sku"               # PaymentIntent metadata of a direct (non-Checkout) purchase
QUANTITY_KEY = "kraty_quantity"

CHECKOUT_COMPLETED = "checkout.session.completed"
ASYNC_SUCCEEDED = "checkout.session.async_payment_succeeded"
ASYNC_FAILED = "checkout.session.async_payment_failed"
EXPIRED = "checkout.session.expired"
PI_SUCCEEDED = "payment_intent.succeeded"
INVOICE_PAID = "invoice.paid"  # mappers/stripe_invoices.py
# refunds and disputes: mappers/stripe_reversals.py
HANDLED = frozenset({CHECKOUT_COMPLETED, ASYNC_SUCCEEDED, ASYNC_FAILED, EXPIRED, PI_SUCCEEDED,
                     INVOICE_PAID}) | stripe_reversals.EVENTS

def _id():
    return fields.String(required=True, validate=validate.Length(1, 255))


def _money():
    return fields.Integer(strict=True, validate=validate.Range(0, 2**53), load_default=None, allow_none=True)


ref_id = stripe_reversals.ref_of  # the id of an id or of an expanded object ({"id": ...}); other Stripe modules too


class _Lenient(Schema):
    class Meta:
        unknown = EXCLUDE


class EventSchema(_Lenient):
    id = _id()
    type = fields.String(required=True, validate=validate.Length(1, 128))
    livemode = fields.Boolean(required=True, truthy={True}, falsy={False})
    created = fields.Integer(strict=True, load_default=None)
    data = fields.Dict(required=True)
    # ``account`` (Stripe Connect) and a session's ``mode`` / ``total_details`` are read by hand (_account,
    # checkout_session): one marshmallow field more costs about 2 us on the webhook's hot path


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
    amount_received = _money()
    currency = fields.String(load_default=None, allow_none=True)
    latest_charge = fields.Raw(load_default=None, allow_none=True)


class PriceSchema(_Lenient):
    id = _id()
    product = fields.Raw(load_default=None, allow_none=True)
    lookup_key = fields.String(load_default=None, allow_none=True)


class LineItemSchema(_Lenient):
    """stripe-python's LineItem: ``price`` and ``quantity`` are Optional (see lines_from_line_items)."""
    id = fields.String(load_default=None)
    quantity = fields.Integer(load_default=None, allow_none=True, strict=True, validate=validate.Range(1, 2_147_483_647))
    description = fields.String(load_default=None, allow_none=True)
    price = fields.Nested(PriceSchema, load_default=None, allow_none=True)


class _SessionData(_Lenient):
    object = fields.Nested(CheckoutSessionSchema, required=True)


class CheckoutEventSchema(EventSchema):
    """A Checkout Session event, its envelope and its session's fields in one load (``checkout_event``)."""
    data = fields.Nested(_SessionData, required=True)


# one instance each (pure objects; marshmallow keeps no state between loads): building one per call
# costs more than the load itself on the webhook's hot path
EVENT, SESSION, PAYMENT_INTENT = EventSchema(), CheckoutSessionSchema(), PaymentIntentSchema()
CHECKOUT_EVENT = CheckoutEventSchema()
SESSION_EVENTS = frozenset({CHECKOUT_COMPLETED, ASYNC_SUCCEEDED, ASYNC_FAILED, EXPIRED})
LINE_ITEMS = LineItemSchema(many=True)


@dataclass(frozen=True)
class Event:
    id: str
    type: str
    livemode: bool
    object: dict
    account: str | None = None  # Stripe Connect: the connected account the objects live on

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
    return Event(data["id"], data["type"], data["livemode"], obj, _account(payload.get("account")))


def checkout_event(payload) -> Event | None:
    """``parse_event`` and ``check_object`` of a Checkout Session event in ONE marshmallow load (the webhook's
    usual event), accepting exactly what they accept; None for any other payload, and for one they would refuse
    (they then say why, with their own messages)."""
    if not isinstance(payload, dict) or payload.get("type") not in SESSION_EVENTS:
        return None
    try:
        data = CHECKOUT_EVENT.load(payload)
        obj = payload["data"]["object"]
        _session_extras(data["data"]["object"], obj)
        return Event(data["id"], data["type"], data["livemode"], obj, _account(payload.get("account")))
    except ValidationError:
        return None


def _account(value) -> str | None:
    """The event's connected account (Stripe Connect): the account its objects live on, or None."""
    if value is not None and not (isinstance(value, str) and ACCOUNT_RE.match(value)):
        raise ValidationError({"account": ["must be a connected account id acct_..."]})
    return value


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


def player_hint(obj: dict, metadata_key: str, player_id: str | None, *, reference: bool = True) -> dict:
    """``{"player_hint": why}`` when no player id was found on the object (nothing when one was): none given,
    or what was given is not a usable player id. ``reference``: a Checkout Session also has client_reference_id."""
    if player_id is not None:
        return {}
    names = (["client_reference_id"] if reference else []) + [f"metadata[{metadata_key}]"]
    given = [name for name, value in zip(names, ([obj.get("client_reference_id")] if reference else [])
                                         + [(obj.get("metadata") or {}).get(metadata_key)])
             if value not in (None, "")]
    if given:
        return {"player_hint": f"{' and '.join(given)} not a usable player id (1-128 printable characters, "
                               "no spaces)"}
    if reference:
        return {"player_hint": f"no client_reference_id and no metadata[{metadata_key}]"}
    return {"player_hint": f"no metadata[{metadata_key}] on the PaymentIntent"}


def checkout_session(obj: dict) -> dict:
    return _session_extras(SESSION.load(obj), obj)


def _session_extras(data: dict, obj: dict) -> dict:
    """A loaded session's payment intent id, and its ``mode`` and ``total_details`` read by hand from ``obj``."""
    data["payment_intent"] = ref_id(data["payment_intent"])
    mode, details = obj.get("mode"), obj.get("total_details")
    if not (mode is None or isinstance(mode, str)) or not (details is None or isinstance(details, dict)):
        raise ValidationError({"mode": ["must be a string"]} if not (mode is None or isinstance(mode, str))
                              else {"total_details": ["must be an object"]})
    data["mode"], data["total_details"] = mode or MODE_PAYMENT, details
    return data


def session_namespace(session: dict) -> str | None:
    return _metadata_text(session.get("metadata") or {}, NAMESPACE_KEY)


def checkout_paid(session: dict) -> tuple[str | None, str | None, str | None]:
    """(amount paid, currency, discount) of a Checkout Session in major units: ``amount_total`` and
    ``total_details.amount_discount`` (the coupons Stripe applied)."""
    price, currency = from_minor(session["amount_total"], session["currency"])
    discount = (session["total_details"] or {}).get("amount_discount")
    return price, currency, from_minor(discount, session["currency"])[0] if discount else None


def lookup_of(account: str | None) -> str:
    """The order's lookup: a connected account's session is fetched on that account."""
    return LOOKUP_CHECKOUT if account is None else f"{LOOKUP_CHECKOUT}@{account}"


def purchase_from_session(session: dict, event: Event, metadata_key: str, extra_refs: tuple[str, ...] = ()) -> Purchase:
    """A paid Checkout Session; its lines are fetched from Stripe's API when it is fulfilled (and its price
    checked then, ``checkout_paid``). ``extra_refs``: its charge, when known."""
    player_id = player_of(session, metadata_key)
    return Purchase(source=SOURCE, transaction_id=session["id"], player_id=player_id,
                    environment=event.environment, lines=[], lookup=lookup_of(event.account),
                    payment_ref=session["payment_intent"], extra_refs=extra_refs,
                    **price_fields(from_minor(session["amount_total"], session["currency"])),
                    detail={"stripe_event": event.id, "amount": session["amount_total"],
                            "currency": session["currency"], **player_hint(session, metadata_key, player_id)})


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
    """A direct PaymentIntent: its metadata names the SKU, ``amount_received`` is what was paid (compared
    with the catalog's price under the game's ``payment_intent`` policy)."""
    sku, quantity = direct_sku(pi)
    charge = ref_id(pi["latest_charge"])
    player_id = player_of(pi, metadata_key)
    return Purchase(source=SOURCE, transaction_id=pi["id"], player_id=player_id,
                    environment=event.environment, lines=[{"itemSku": sku, "quantity": quantity}],
                    payment_ref=pi["id"], extra_refs=(charge,) if charge else (), price_check="payment_intent",
                    **price_fields(from_minor(pi["amount_received"], pi["currency"])),
                    detail={"stripe_event": event.id, "amount": pi["amount_received"], "currency": pi["currency"],
                            **player_hint(pi, metadata_key, player_id, reference=False)})


def line_of(item_id, price: dict | None, quantity: int | None, description=None) -> dict:
    """One order line naming the price id, product id and lookup key (tried in that order). A line without a
    price names nothing the catalog can map, and one without a quantity does not say how many: that line
    alone fails, with its reason (``error``), and grants nothing; the order's other lines go on."""
    if price is None or quantity is None:
        missing = "price" if price is None else "quantity"
        return {"store": SOURCE, "quantity": quantity or 0, "description": description,
                "error": f"Stripe line {item_id or '(no id)'} has no {missing}: nothing to grant for it"}
    return {"store": SOURCE, "price": price["id"], "product": ref_id(price["product"]),
            "lookup_key": price["lookup_key"], "quantity": quantity, "description": description}


def lines_from_line_items(items: list[dict]) -> list[dict]:
    """Checkout line items -> order lines (``line_of``)."""
    return [line_of(item["id"], item["price"], item["quantity"], item["description"]) for item in LINE_ITEMS.load(items)]
