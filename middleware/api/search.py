"""``GET /v1/search``: the orders any id a customer or a store quotes names, and the players an id starts.

Needs a ``viewer`` key; a key limited to some games sees only theirs. ``q`` is looked up as every id the
ledger holds for an order (the order id; a Checkout Session, PaymentIntent, charge, invoice, refund or dispute
id; a Google order id or purchase token; an App Store transaction or original transaction id; a storefront's
transaction id) and as a player id, exactly and as a prefix (see ``middleware.ops.search``).
"""
from __future__ import annotations

from flask import jsonify
from marshmallow import RAISE, Schema, fields, validate

from middleware import ops
from middleware.api import auth
from middleware.api.fulfilment_schemas import CreatedRange, FulfilmentSummary
from middleware.api.fulfilments import actor, check_namespace
from middleware.api.v1 import Blueprint, printable
from middleware.ledger import states
from middleware.ops import search as ops_search
from middleware.services import services

blp = Blueprint("search", __name__, url_prefix="/v1/search",
                description="Find orders by any id a customer or a store quotes, and players by an id prefix. "
                            "Needs a `viewer` key.")


class SearchArgs(CreatedRange):
    q = fields.String(required=True, validate=[validate.Length(1, ops_search.MAX_QUERY), printable],
                      metadata={"description": "an order, store or player id (pi_…, ch_…, re_…, GPA.…, an "
                                               "originalTransactionId, a purchase token, a player id prefix...)"})
    namespace = fields.String(validate=validate.Length(1, 64), metadata={"description": "the game"})
    state = fields.String(validate=validate.OneOf(states.STATES))
    limit = fields.Integer(load_default=50, validate=validate.Range(1, ops.MAX_PAGE),
                           metadata={"description": "orders at most, 1-200 (default 50)"})


class FoundOrder(FulfilmentSummary):
    matchedBy = fields.String(metadata={"description": ", ".join(ops_search.MATCHES)})


class Player(Schema):
    namespace = fields.String()
    playerId = fields.String()


class SearchResult(Schema):
    query = fields.Dict()
    orders = fields.List(fields.Nested(FoundOrder))
    more = fields.Boolean(metadata={"description": "more orders matched than were shown (narrow the search)"})
    players = fields.List(fields.Nested(Player), metadata={"description": "players whose id starts with q"})


@blp.before_request
def _authenticate():
    auth.require("viewer")


@blp.route("", methods=["GET"])
@blp.arguments(SearchArgs, location="query", unknown=RAISE)
@blp.response(200, SearchResult)
@blp.doc(security=[{"apiKey": []}])
def search(args):
    """Orders named by `q` (each says how: `matchedBy`), newest first, and the players whose id starts with it."""
    check_namespace(args.get("namespace"))
    query = ops_search.SearchQuery(q=args["q"], namespace=args.get("namespace"), state=args.get("state"),
                                   created_after=args.get("createdAfter"), created_before=args.get("createdBefore"))
    with services().read_session() as session:
        found = ops_search.search(session, actor(), query, args["limit"])
    return jsonify(found)   # SearchResult's shape already (see fulfilments.list_fulfilments)
