"""``POST /v1/fulfilments/<id>/actions/refund``: refund an order through its store (``admin``; ``ops.refunds``)."""
from __future__ import annotations

from marshmallow import fields, validate

from middleware import ops
from middleware.api import auth
from middleware.api.fulfilments import ActionBody, ActionResult, actor, blp
from middleware.services import services


class RefundBody(ActionBody):
    amount = fields.Integer(strict=True, validate=validate.Range(1, ops.MAX_AMOUNT), metadata={
        "description": "Stripe only: a partial refund, in the currency's minor units (cents); left out: all that "
                       "is left"})
    stripeReason = fields.String(validate=validate.OneOf(ops.STRIPE_REFUND_REASONS), metadata={
        "description": "Stripe only: the reason Stripe records (`duplicate`, `fraudulent`, "
                       "`requested_by_customer`)"})
    revoke = fields.Boolean(load_default=True, metadata={
        "description": "Google Play only: false refunds the money and takes nothing back (default true)"})


class RefundResult(ActionResult):
    refund = fields.Raw(metadata={"description": "store, status (succeeded, pending, failed, requested...), id (the "
                                                 "store's refund id), amount, payment"})


@blp.route("/<fulfilment_id>/actions/refund", methods=["POST"])
@blp.arguments(RefundBody, location="json")
@blp.response(200, RefundResult)
@blp.doc(security=[{"apiKey": []}])
def refund(body, fulfilment_id):
    """Refund the order through its store (admin: money leaves the studio). Stripe (full or partial) and
    Google Play (with or without revoking).

    The goods are taken back when the store confirms (a Stripe Refund already `succeeded`, its `refund.*` /
    `charge.refunded` event, or Google's voided purchase), through the normal reversal path, once. An App Store
    or storefront order: 422 `store_cannot_refund`. The store refusing (already refunded, amount too large): 422
    `store_refused`, nothing changed. The store unreachable: 503 `store_unavailable` — send the same
    `idempotencyKey` again (the store's own idempotency key derives from the audit entry: no second refund).
    """
    auth.require(ops.REFUND_ROLE)
    return ops.refund(services(), actor(), fulfilment_id, body["reason"], amount=body.get("amount"),
                      stripe_reason=body.get("stripeReason"), revoke=body["revoke"],
                      idempotency_key=body.get("idempotencyKey"))
