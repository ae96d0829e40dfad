"""The shapes of ``/v1/fulfilments`` (marshmallow schemas, in its OpenAPI description): the list's filters and
page, an order's summary and detail (items, history, store events, sink events), the actions' bodies and
result."""
from __future__ import annotations

from marshmallow import Schema, fields, validate, validates_schema

from middleware import ops
from middleware.ledger import states

from middleware.api.v1 import PRINTABLE_PATTERN, Strict, UtcDateTime, check_order, clean_id, not_blank, printable


class Page(Strict):
    limit = fields.Integer(load_default=50, validate=validate.Range(1, ops.MAX_PAGE),
                           metadata={"description": "rows per page, 1-200 (default 50)"})
    cursor = fields.String(validate=validate.Length(1, 1024),
                           metadata={"description": "`nextCursor` of the previous page (same filters)"})


class CreatedRange(Strict):
    """When the orders were created: from ``createdAfter`` (inclusive) to ``createdBefore`` (exclusive)."""
    createdAfter = UtcDateTime(format="iso", metadata={"description": "ISO 8601 with a timezone; inclusive"})
    createdBefore = UtcDateTime(format="iso", metadata={"description": "ISO 8601 with a timezone; exclusive"})

    @validates_schema
    def _range(self, data, **kwargs):
        check_order(data, "createdAfter", "createdBefore")


class FulfilmentArgs(Page, CreatedRange):
    namespace = fields.String(validate=validate.Length(1, 64), metadata={"description": "the game"})
    source = fields.String(validate=validate.OneOf(ops.SOURCES), metadata={"description": "the store"})
    state = fields.String(validate=validate.OneOf(states.STATES))
    playerId = fields.String(validate=clean_id)
    transactionId = fields.String(validate=validate.Length(1, 255),
                                  metadata={"description": "the store's transaction id (a Checkout Session id...)"})
    sku = fields.String(validate=validate.Length(1, 128), metadata={"description": "orders with a line of this SKU"})
    environment = fields.String(validate=validate.OneOf(ops.ENVIRONMENTS))


class FulfilmentSummary(Schema):
    id = fields.String()
    namespace = fields.String()
    source = fields.String()
    storefront = fields.String(allow_none=True, metadata={
        "description": "the third-party storefront that created the order (source accelbyte); null for a store's"})
    transactionId = fields.String()
    playerId = fields.String(allow_none=True)
    environment = fields.String()
    state = fields.String(metadata={"description": ", ".join(states.STATES)})
    reason = fields.String(allow_none=True)
    attention = fields.String(allow_none=True, metadata={"description": "why ops should look at it, if they should"})
    price = fields.String(allow_none=True, metadata={"description": "what was paid, a decimal in major units"})
    currency = fields.String(allow_none=True)
    attempts = fields.Integer()
    createdAt = fields.String()
    updatedAt = fields.String()


class CursorPage(Schema):
    """A keyset page: its rows (``items``, in the subclass) and the cursor of the next one."""
    nextCursor = fields.String(allow_none=True, metadata={"description": "null on the last page"})


class FulfilmentPage(CursorPage):
    items = fields.List(fields.Nested(FulfilmentSummary))


class Item(Schema):
    id = fields.Integer()
    line = fields.Integer()
    component = fields.Integer()
    sku = fields.String(allow_none=True)
    componentSku = fields.String(allow_none=True)
    itemId = fields.String(allow_none=True)
    kind = fields.String(allow_none=True)
    target = fields.String(allow_none=True)
    amount = fields.Integer()
    revokedAmount = fields.Integer()
    state = fields.String()
    errorCode = fields.String(allow_none=True)
    error = fields.String(allow_none=True)
    cycle = fields.Integer()
    kratyLedgerEntryId = fields.String(allow_none=True)
    kratyRevokeEntryId = fields.String(allow_none=True)
    updatedAt = fields.String(allow_none=True)


class LogEntry(Schema):
    """One entry of a log (an order's history, the audit log): its id, when and who."""
    id = fields.Integer()
    at = fields.String()
    actor = fields.String()


class History(LogEntry):
    from_ = fields.String(data_key="from", attribute="from", allow_none=True)
    to = fields.String(allow_none=True)
    detail = fields.Raw(allow_none=True)


class Event(Schema):
    id = fields.Integer()
    source = fields.String()
    providerEventId = fields.String()
    type = fields.String(allow_none=True)
    namespace = fields.String(allow_none=True)
    receivedAt = fields.String()
    outcome = fields.String()
    detail = fields.String(allow_none=True)
    contentType = fields.String(allow_none=True)
    body = fields.Raw(allow_none=True, metadata={"description": "the raw body decoded as JSON, secrets redacted"})
    bodyNote = fields.String(metadata={"description": "why the body is not shown (not JSON)"})


class SinkEvent(Schema):
    eventId = fields.String()
    type = fields.String()
    occurredAt = fields.String()
    playerSequence = fields.Integer(allow_none=True)
    deliveries = fields.List(fields.Dict(), metadata={"description": "per sink: id, sink, state, attempts, "
                                                                      "lastStatus, lastError, nextAttemptAt, "
                                                                      "deliveredAt"})


class FulfilmentDetail(FulfilmentSummary):
    lines = fields.Raw(metadata={"description": "the order lines as the store sent them"})
    lookup = fields.String(allow_none=True)
    playerKey = fields.String(allow_none=True)
    followup = fields.String(allow_none=True)
    followupState = fields.String(allow_none=True)
    nextAttemptAt = fields.String(allow_none=True)
    stateChangedAt = fields.String()
    items = fields.List(fields.Nested(Item))
    history = fields.List(fields.Nested(History))
    inboundEvents = fields.List(fields.Nested(Event), metadata={"description": "the store events behind it"})
    kratyWebhooks = fields.List(fields.Nested(Event), metadata={"description": "Kraty's webhooks about it"})
    sinkEvents = fields.List(fields.Nested(SinkEvent), metadata={"description": "events sent to the sinks"})


class ActionBody(Strict):
    reason = fields.String(required=True, validate=[validate.Length(1, ops.MAX_REASON), not_blank],
                           metadata={"description": "why (recorded in the audit log), 1-500 characters"})
    idempotencyKey = fields.String(validate=[validate.Length(1, ops.MAX_IDEMPOTENCY_KEY), printable],
                                   metadata={"description": "the same key (per API key) answers the first call's "
                                                            "answer again and changes nothing"})


def make_good_line(key: str, count: str) -> dict:
    """The description of one make-good entry (ops._contents checks it)."""
    return {"type": "object", "required": [key, count], "additionalProperties": False,
            "properties": {key: {"type": "string", "minLength": 1, "maxLength": 64, "pattern": PRINTABLE_PATTERN},
                           count: {"type": "integer", "minimum": 1, "maximum": ops.MAX_AMOUNT}}}


class AttachPlayerBody(ActionBody):
    playerId = fields.String(required=True, validate=clean_id, metadata={"description": "the Kraty player"})


class MakeGoodBody(ActionBody):
    contents = fields.List(fields.Dict(metadata={"oneOf": [make_good_line("currencyKey", "amount"),
                                                           make_good_line("itemKey", "quantity")]}),
                           required=True, validate=validate.Length(1, ops.MAX_MAKE_GOOD_LINES),
                           metadata={"description": "what Kraty grants: `{currencyKey, amount}` or "
                                                    "`{itemKey, quantity}` entries"})


class ActionResult(Schema):
    action = fields.String()
    fulfilmentId = fields.String()
    auditId = fields.Integer()
    state = fields.String(metadata={"description": "the order's state after the action (and its attempt)"})
    before = fields.Raw(metadata={"description": "the order before: state, reason, playerId, items"})
    after = fields.Raw(metadata={"description": "the order after, with the request"})
    replayed = fields.Boolean(metadata={"description": "true when answered again for a repeated idempotency key"})
    makeGood = fields.Raw(metadata={"description": "make-good only: status, contents, grantId, ledgerEntryId"})
