"""Stripe refunds and disputes -> canonical reversals, by the status Stripe gives them. Pure: no I/O.

Facts (``../shared/protocols/stores.md``, stripe-python's ``Refund``, ``Dispute`` and ``Charge``):

- A Refund's ``status`` is ``pending``, ``requires_action``, ``succeeded``, ``failed`` or ``canceled``;
  ``failed`` and ``canceled`` are final and can follow ``succeeded`` (the money stays with the studio).
  ``refund.created``, ``refund.updated``, ``refund.failed`` and ``charge.refund.updated`` carry the Refund.
- ``charge.refunded`` carries the Charge: ``amount_refunded`` is cumulative and, since API version
  2022-11-15, its ``refunds`` list is no longer embedded: the handler lists the charge's refunds.
- A Dispute's ``status``: inquiries ``warning_needs_response``, ``warning_under_review``,
  ``warning_closed`` (no funds withdrawn); chargebacks ``needs_response``, ``under_review`` (and
  ``appeal_needs_response``, ``appeal_under_review``); closed ``won``, ``lost``, ``prevented``. Its own
  ``amount`` can be less than the charge.

Every refund takes effect once (key ``refund:<re id>:taken``) and is given back once
(``refund:<re id>:failed``); every dispute phase once (``dispute:<du id>:inquiry|opened|lost|won``).
"""
from __future__ import annotations

from decimal import Decimal, InvalidOperation

from marshmallow import EXCLUDE, Schema, ValidationError, fields, validate

from mappers.canonical import Reversal
from mappers.money import THREE_DECIMAL, ZERO_DECIMAL

SOURCE = "stripe"

CHARGE_REFUNDED = "charge.refunded"
REFUND_EVENTS = frozenset({"refund.created", "refund.updated", "refund.failed", "charge.refund.updated"})
DISPUTE_EVENTS = frozenset({"charge.dispute.created", "charge.dispute.updated", "charge.dispute.closed",
                            "charge.dispute.funds_withdrawn", "charge.dispute.funds_reinstated"})
EVENTS = frozenset({CHARGE_REFUNDED}) | REFUND_EVENTS | DISPUTE_EVENTS

# refund statuses
SUCCEEDED, PENDING = "succeeded", "pending"
GIVEN_BACK = ("failed", "canceled")
REFUND_ON = (SUCCEEDED, PENDING)   # game setting ``refund_on``: the status a refund takes back at

# reversal kinds (middleware/orders/reversals.py acts on them)
REFUND, REFUND_FAILED = "refund", "refund_failed"
DISPUTE_INQUIRY, DISPUTE_OPENED = "dispute_inquiry", "dispute_opened"
DISPUTE_LOST, DISPUTE_WON = "dispute_lost", "dispute_won"

# dispute status -> (phase, kind); a status not here (a new one) changes nothing and is recorded
DISPUTE_PHASES = {
    "warning_needs_response": ("inquiry", DISPUTE_INQUIRY),
    "warning_under_review": ("inquiry", DISPUTE_INQUIRY),
    "needs_response": ("opened", DISPUTE_OPENED),
    "under_review": ("opened", DISPUTE_OPENED),
    "appeal_needs_response": ("opened", DISPUTE_OPENED),
    "appeal_under_review": ("opened", DISPUTE_OPENED),
    "lost": ("lost", DISPUTE_LOST),
    "won": ("won", DISPUTE_WON),
    "warning_closed": ("won", DISPUTE_WON),   # the inquiry ended without a chargeback
    "prevented": ("won", DISPUTE_WON),
}
DISPUTE_KEY_PHASES = ("inquiry", "opened", "lost", "won")


def _id():
    return fields.String(required=True, validate=validate.Length(1, 255))


def _money(**kw):
    return fields.Integer(strict=True, validate=validate.Range(0, 2**53), allow_none=True, **kw)


def _text():
    return fields.String(load_default=None, allow_none=True, validate=validate.Length(max=255))


def ref_of(value):
    """An id or an expanded object (``{"id": ...}``)."""
    if isinstance(value, dict):
        value = value.get("id")
    if value is not None and not (isinstance(value, str) and 0 < len(value) <= 255):
        raise ValidationError("must be an id")
    return value


class _Lenient(Schema):
    class Meta:
        unknown = EXCLUDE


class RefundSchema(_Lenient):
    id = _id()
    amount = _money(required=True)
    charge = fields.Raw(load_default=None, allow_none=True)
    payment_intent = fields.Raw(load_default=None, allow_none=True)
    status = _text()
    currency = _text()
    failure_reason = _text()


class RefundListSchema(_Lenient):
    data = fields.List(fields.Dict(), required=True)
    has_more = fields.Boolean(load_default=False, truthy={True}, falsy={False})


class ChargeSchema(_Lenient):
    id = _id()
    payment_intent = fields.Raw(load_default=None, allow_none=True)
    amount = _money(load_default=None)
    amount_refunded = _money(load_default=None)
    refunded = fields.Boolean(load_default=False, truthy={True}, falsy={False})
    currency = _text()
    refunds = fields.Nested(RefundListSchema, load_default=None, allow_none=True)


class DisputeSchema(_Lenient):
    id = _id()
    charge = fields.Raw(load_default=None, allow_none=True)
    payment_intent = fields.Raw(load_default=None, allow_none=True)
    amount = _money(load_default=None)
    status = _text()
    currency = _text()


REFUND_OBJECT, CHARGE_OBJECT, DISPUTE_OBJECT = RefundSchema(), ChargeSchema(), DisputeSchema()


def _loaded(schema: Schema, obj: dict, *refs: str) -> dict:
    data = schema.load(obj)
    for name in refs:
        data[f"{name}_object"] = obj.get(name) if isinstance(obj.get(name), dict) else None
        data[name] = ref_of(data[name])
    return data


def refund_object(obj: dict) -> dict:
    """A Refund: ``charge`` and ``payment_intent`` as ids (``charge_object``: the charge if expanded)."""
    return _loaded(REFUND_OBJECT, obj, "charge", "payment_intent")


def charge_object(obj: dict) -> dict:
    """A Charge; ``embedded_refunds``: its refunds when the event embeds the whole list (older API
    versions), else None."""
    data = _loaded(CHARGE_OBJECT, obj, "payment_intent")
    listed = data.pop("refunds")
    data["embedded_refunds"] = (None if listed is None or listed["has_more"]
                                else [refund_object(r) for r in listed["data"]])
    return data


def dispute_object(obj: dict) -> dict:
    data = _loaded(DISPUTE_OBJECT, obj, "charge", "payment_intent")
    if data["charge"] is None and data["payment_intent"] is None:
        raise ValidationError({"charge": ["a dispute names its charge"]})
    return data


def check(event_type: str, obj: dict) -> None:
    """Refuse (ValidationError) a refund or dispute event whose object lacks what we rely on."""
    if event_type == CHARGE_REFUNDED:
        charge_object(obj)
    elif event_type in REFUND_EVENTS:
        refund = refund_object(obj)
        if refund["charge"] is None and refund["payment_intent"] is None:
            raise ValidationError({"charge": ["a refund names its charge or payment_intent"]})
    elif event_type in DISPUTE_EVENTS:
        dispute_object(obj)


def charge_total(charge: dict | None) -> int | None:
    return charge.get("amount") if isinstance(charge, dict) and isinstance(charge.get("amount"), int) else None


def minor_units(price: str | None, currency: str | None) -> int | None:
    """An order's recorded price ("4.99", "USD") back in Stripe's minor units (499); None if unknown."""
    if not price or not currency:
        return None
    code = currency.upper()
    exponent = 0 if code in ZERO_DECIMAL else 3 if code in THREE_DECIMAL else 2
    try:
        value = Decimal(price).scaleb(exponent)
    except InvalidOperation:
        return None
    return int(value) if value == value.to_integral_value() and value >= 0 else None


def refund_notice(refund: dict, ref: str, total: int | None, event_id: str, refund_on: str) -> Reversal | None:
    """The reversal a refund's status calls for: ``taken`` when it is in effect (``succeeded``, or
    ``pending`` too when the game says so), ``failed`` when it failed or was canceled; None while it is
    not yet in effect (``pending`` by default, ``requires_action``)."""
    status = refund["status"]
    detail = {"stripe_event": event_id, "refund": refund["id"], "charge": refund["charge"], "status": status}
    if status in GIVEN_BACK:
        kind, phase = REFUND_FAILED, "failed"
        detail["failure_reason"] = refund["failure_reason"]
    elif status == SUCCEEDED or (status == PENDING and refund_on == PENDING):
        kind, phase = REFUND, "taken"
    else:
        return None
    return Reversal(source=SOURCE, key=f"refund:{refund['id']}:{phase}", ref=ref, kind=kind,
                    amount=refund["amount"], total=total, currency=(refund["currency"] or "").upper() or None,
                    detail=detail, store_ref=refund["id"])


def dispute_notice(dispute: dict, ref: str, total: int | None, event_id: str) -> Reversal | None:
    """The reversal a dispute's status calls for (whatever event carried it: Stripe's events are not
    ordered, the status is what counts); None for a status we do not know."""
    phase = DISPUTE_PHASES.get(dispute["status"])
    if phase is None:
        return None
    what, kind = phase
    return Reversal(source=SOURCE, key=f"dispute:{dispute['id']}:{what}", ref=ref, kind=kind,
                    amount=dispute["amount"], total=total,
                    currency=(dispute["currency"] or "").upper() or None,
                    detail={"stripe_event": event_id, "dispute": dispute["id"], "charge": dispute["charge"],
                            "status": dispute["status"]}, store_ref=dispute["id"])
