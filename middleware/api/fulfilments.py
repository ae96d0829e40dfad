"""``/v1/fulfilments``: find orders, look at one, fix it (the ops API; see docs/ops-api.md).

Reading needs a ``viewer`` key; ``retry``, ``revoke`` and ``attach-player`` an ``operator`` key;
``make-good``, ``resolve`` and ``refund`` (``api/refunds.py``) an ``admin`` key. A key limited to some games sees only their orders.
The work is done by ``middleware.ops``, which the CLI and the console call too.
"""
from __future__ import annotations

from datetime import datetime

from flask import g
from marshmallow import (
    RAISE,
    Schema,
    fields,
    validate,
    validates_schema,
)

from middleware.api import auth

from middleware import ops
from middleware.ledger import states
from middleware.services import services

from middleware.api import cursors
from middleware.api.errors import ApiError
from middleware.api.v1 import PRINTABLE_PATTERN, Blueprint, Strict, UtcDateTime, check_order, clean_id, not_blank, printable

blp = Blueprint("fulfilments", __name__, url_prefix="/v1/fulfilments",
                description="Orders: list and filter them, see one with everything behind it, fix it (retry, "
                            "revoke, attach a player, make good, resolve). Reading needs a `viewer` key; the "
                            "actions `operator` or `admin` (see each).")
CURSOR_KIND = "fulfilments"


class Page(Strict):
    limit = fields.Integer(load_default=50, validate=validate.Range(1, ops.MAX_PAGE),
                           metadata={"description": "rows per page, 1-200 (default 50)"})
    cursor = fields.String(validate=validate.Length(1, 1024),
                           metadata={"description": "`nextCursor` of the previous page (same filters)"})


class FulfilmentArgs(Page):
    namespace = fields.String(validate=validate.Length(1, 64), metadata={"description": "the game"})
    source = fields.String(validate=validate.OneOf(ops.SOURCES), metadata={"description": "the store"})
    state = fields.String(validate=validate.OneOf(states.STATES))
    playerId = fields.String(validate=clean_id)
    transactionId = fields.String(validate=validate.Length(1, 255),
                                  metadata={"description": "the store's transaction id (a Checkout Session id...)"})
    sku = fields.String(validate=validate.Length(1, 128), metadata={"description": "orders with a line of this SKU"})
    environment = fields.String(validate=validate.OneOf(ops.ENVIRONMENTS))
    createdAfter = UtcDateTime(format="iso", metadata={"description": "ISO 8601 with a timezone; inclusive"})
    createdBefore = UtcDateTime(format="iso", metadata={"description": "ISO 8601 with a timezone; exclusive"})

    @validates_schema
    def _range(self, data, **kwargs):
        check_order(data, "createdAfter", "createdBefore")


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


class FulfilmentPage(Schema):
    items = fields.List(fields.Nested(FulfilmentSummary))
    nextCursor = fields.String(allow_none=True, metadata={"description": "null on the last page"})


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


class History(Schema):
    id = fields.Integer()
    at = fields.String()
    actor = fields.String()
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


@blp.before_request
def _authenticate():
    auth.require("viewer")


def actor() -> ops.Actor:
    return ops.Actor.from_key(g.api_key, g.get("request_id"))


def check_namespace(namespace: str | None) -> None:
    if namespace is not None and services().catalog.game(namespace) is None:
        raise ApiError(422, "validation_failed", f"unknown namespace {namespace}",
                       {"fields": {"namespace": ["not a game of the catalog"]}})


def decode_cursor(kind: str, filters: dict, token: str | None) -> list | None:
    if token is None:
        return None
    try:
        return cursors.decode(cursors.secrets_from(services()), kind, filters, token)
    except cursors.CursorError as exc:
        raise ApiError(400, "invalid_cursor", str(exc)) from None


def encode_cursor(kind: str, filters: dict, key: list | None) -> str | None:
    return None if key is None else cursors.encode(cursors.secrets_from(services())[0], kind, filters, key)


@blp.route("", methods=["GET"])
@blp.arguments(FulfilmentArgs, location="query", unknown=RAISE)
@blp.response(200, FulfilmentPage)
@blp.doc(security=[{"apiKey": []}])
def list_fulfilments(args):
    """List orders, newest first, filtered; keyset pagination.

    Filters combine (AND). `nextCursor` fetches the next page with the same filters; a cursor that was
    altered or made for other filters answers 400 `invalid_cursor`. Unknown parameters or values: 422.
    """
    check_namespace(args.get("namespace"))
    query = ops.FulfilmentQuery(namespace=args.get("namespace"), source=args.get("source"),
                                state=args.get("state"), player_id=args.get("playerId"),
                                transaction_id=args.get("transactionId"), sku=args.get("sku"),
                                environment=args.get("environment"), created_after=args.get("createdAfter"),
                                created_before=args.get("createdBefore"))
    filters = query.as_filters()
    key = decode_cursor(CURSOR_KIND, filters, args.get("cursor"))
    after = None
    if key is not None:
        try:
            after = (datetime.fromisoformat(key[0]), str(key[1]))
        except (ValueError, TypeError, IndexError):
            raise ApiError(400, "invalid_cursor", "the cursor is malformed") from None
    with services().session() as session:
        rows, following = ops.list_fulfilments(session, actor(), query, args["limit"], after)
    return {"items": rows,
            "nextCursor": encode_cursor(CURSOR_KIND, filters,
                                        None if following is None else [following[0].isoformat(), following[1]])}


@blp.route("/<fulfilment_id>", methods=["GET"])
@blp.response(200, FulfilmentDetail)
@blp.doc(security=[{"apiKey": []}])
def get_fulfilment(fulfilment_id):
    """One order: its rows (state, error, Kraty ledger entries), full history, the store events behind it
    (bodies decoded, secrets redacted), Kraty's webhooks about it and what the sinks were sent.

    Unknown id (or another game's order for a key limited to some games): 404 `not_found`.
    """
    with services().session() as session:
        return ops.fulfilment_detail(session, actor(), fulfilment_id)


def act(fulfilment_id: str, action: str, body: dict):
    auth.require(ops.ACTION_ROLES[action])
    return ops.perform(services(), actor(), fulfilment_id, action, body["reason"],
                       idempotency_key=body.get("idempotencyKey"), player_id=body.get("playerId"),
                       contents=body.get("contents"))


@blp.route("/<fulfilment_id>/actions/retry", methods=["POST"])
@blp.arguments(ActionBody, location="json")
@blp.response(200, ActionResult)
@blp.doc(security=[{"apiKey": []}])
def retry(body, fulfilment_id):
    """Retry (operator): a FULFILL_FAILED order's failed rows, or a REVOKE_FAILED order's take-backs.

    Other states: 409 `invalid_state` with `details.state`. Answers after the attempt.
    """
    return act(fulfilment_id, ops.RETRY, body)


@blp.route("/<fulfilment_id>/actions/revoke", methods=["POST"])
@blp.arguments(ActionBody, location="json")
@blp.response(200, ActionResult)
@blp.doc(security=[{"apiKey": []}])
def revoke(body, fulfilment_id):
    """Take back everything the order granted (operator).

    Only when something was granted and nothing is under way (FULFILLED, FULFILL_FAILED, REVOKE_FAILED or
    RESOLVED with granted rows); else 409 `invalid_state`.
    """
    return act(fulfilment_id, ops.REVOKE, body)


@blp.route("/<fulfilment_id>/actions/attach-player", methods=["POST"])
@blp.arguments(AttachPlayerBody, location="json")
@blp.response(200, ActionResult)
@blp.doc(security=[{"apiKey": []}])
def attach_player(body, fulfilment_id):
    """Give a `player_unresolved` order its player and fulfil it (operator).

    Only for a FULFILL_FAILED order whose store named no player; else 409 `invalid_state`.
    """
    return act(fulfilment_id, ops.ATTACH_PLAYER, body)


@blp.route("/<fulfilment_id>/actions/make-good", methods=["POST"])
@blp.arguments(MakeGoodBody, location="json")
@blp.response(200, ActionResult)
@blp.doc(security=[{"apiKey": []}])
def make_good(body, fulfilment_id):
    """A make-good grant in Kraty for the order's player (admin), noted in the order's history.

    The Kraty idempotency key derives from the audit entry. Kraty unreachable: 503 `kraty_unavailable`
    (send the same idempotency key again); Kraty refusing: 422 `kraty_refused`.
    """
    return act(fulfilment_id, ops.MAKE_GOOD, body)


@blp.route("/<fulfilment_id>/actions/resolve", methods=["POST"])
@blp.arguments(ActionBody, location="json")
@blp.response(200, ActionResult)
@blp.doc(security=[{"apiKey": []}])
def resolve(body, fulfilment_id):
    """Mark a FULFILL_FAILED or REVOKE_FAILED order RESOLVED without granting anything (admin).

    RESOLVED is final for the bridge's own work: never retried, left alone by the reconciler.
    """
    return act(fulfilment_id, ops.RESOLVE, body)
