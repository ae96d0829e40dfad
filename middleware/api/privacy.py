"""``GET /v1/players/{id}/export``: everything the bridge holds on a player (GDPR access requests).

Needs an ``operator`` key; a key limited to some games exports only those. Erasure has no endpoint of its
own: it follows Kraty's ``player.deleted`` webhook (``middleware/ops/privacy.py``), so Kraty stays the one
place an erasure starts.
"""
from __future__ import annotations

from flask import g
from marshmallow import RAISE, fields, validate

from mappers.accelbyte import is_clean_id
from middleware.api import auth
from middleware.ops import privacy
from middleware.services import services

from middleware.api.errors import ApiError
from middleware.api.v1 import Blueprint, Strict, clean_id_parameter

blp = Blueprint("player_export", __name__, url_prefix="/v1/players",
                description="A player's data, for access requests. Needs an `operator` key.")


class ExportArgs(Strict):
    namespace = fields.String(validate=validate.Length(1, 64),
                              metadata={"description": "one game (default: every game the key may see)"})


@blp.route("/<player_id>/export", methods=["GET"], parameters=[clean_id_parameter("player_id")])
@blp.arguments(ExportArgs, location="query", unknown=RAISE)
@blp.response(200, description="the player's orders with their items and history, receipt links, refunds and "
                               "disputes, the stored store and Kraty events, and the events sent to sinks with "
                               "their deliveries")
@blp.doc(security=[{"apiKey": []}])
def export(args, player_id):
    """Everything the bridge holds on a player. 404 `player_not_found` when it holds nothing."""
    auth.require("operator")
    if not is_clean_id(player_id):
        raise ApiError(400, "validation_failed", "the player id must be 1-128 printable characters without spaces",
                       {"fields": {"playerId": ["1-128 printable characters without spaces"]}})
    known = list(services().catalog.games)
    allowed = known if g.api_key.namespaces is None else [ns for ns in known if ns in g.api_key.namespaces]
    if "namespace" in args:
        if args["namespace"] not in known:
            raise ApiError(404, "not_found", f"no game has namespace {args['namespace']!r}")
        if args["namespace"] not in allowed:
            raise ApiError(403, "forbidden", f"the key {g.api_key.name} may not touch namespace {args['namespace']}")
        allowed = [args["namespace"]]
    with services().session() as session:
        data = privacy.export(session, allowed, player_id)
    if not any(data[part] for part in ("fulfilments", "receiptLinks", "inboundEvents", "outboundEvents")):
        raise ApiError(404, "player_not_found", f"the bridge holds nothing on player {player_id}")
    return data
