"""``GET /v1/players/{id}``: the bridge's orders for a player, with totals, beside Kraty's profile.

Needs a ``viewer`` key. Still answers 200 when Kraty is unreachable or errs: ``kraty.available`` is then
false and ``kraty.error`` says why. (The player's data export is ``/v1/players/{id}/export``, in privacy.py.)
"""
from __future__ import annotations

from flask import g
from marshmallow import RAISE, Schema, fields, validate

from middleware.api import auth

from middleware import ops
from middleware.services import services

from middleware.api.errors import ApiError
from middleware.api.fulfilments import FulfilmentSummary, actor
from middleware.api.v1 import Blueprint, Strict

blp = Blueprint("players", __name__, url_prefix="/v1/players",
                description="A player's orders beside Kraty's profile of them. Needs a `viewer` key.")


class PlayerArgs(Strict):
    namespace = fields.String(validate=validate.Length(1, 64),
                              metadata={"description": "the game; needed when the key sees several games"})
    limit = fields.Integer(load_default=ops.PLAYER_ORDERS, validate=validate.Range(1, ops.MAX_PAGE),
                           metadata={"description": "newest orders shown, 1-200 (default 50); totals count all"})


class Totals(Schema):
    orders = fields.Integer()
    byState = fields.Dict(keys=fields.String(), values=fields.Integer())
    paid = fields.Dict(keys=fields.String(), values=fields.String(),
                       metadata={"description": "by currency: the prices of production orders not taken back"})


class PlayerView(Schema):
    playerId = fields.String()
    namespace = fields.String()
    orders = fields.List(fields.Nested(FulfilmentSummary))
    totals = fields.Nested(Totals)
    kraty = fields.Raw(metadata={"description": '`{"available": true, "profile": {...}}` or '
                                               '`{"available": false, "error": "..."}`'})


@blp.before_request
def _authenticate():
    auth.require("viewer")


def _namespace(given: str | None) -> str:
    if given is not None:
        return given
    key = g.api_key
    games = [ns for ns in services().catalog.games if key.namespaces is None or ns in key.namespaces]
    if len(games) != 1:
        raise ApiError(422, "validation_failed", "give namespace: several games",
                       {"fields": {"namespace": ["required when the key sees several games"]}})
    return games[0]


@blp.route("/<player_id>", methods=["GET"])
@blp.arguments(PlayerArgs, location="query", unknown=RAISE)
@blp.response(200, PlayerView)
@blp.doc(security=[{"apiKey": []}])
def player(args, player_id):
    """A player's orders in one game (newest first), totals by state and paid by currency, and Kraty's
    profile (`GET /server/v1/players/{id}`); when Kraty cannot answer, `kraty.available` is false."""
    namespace = _namespace(args.get("namespace"))
    return ops.player_view(services(), actor(), namespace, player_id, args["limit"])
