"""``/v1/fulfilments``: find orders, look at one, fix it (the ops API; see docs/ops-api.md).

Reading needs a ``viewer`` key; ``retry``, ``revoke`` and ``attach-player`` an ``operator`` key;
``make-good``, ``resolve`` and ``refund`` (``api/refunds.py``) an ``admin`` key. A key limited to some games sees only their orders.
The work is done by ``middleware.ops``, which the CLI and the console call too.
"""
from __future__ import annotations

from datetime import datetime

from flask import g, jsonify
from marshmallow import RAISE

from middleware.api import auth

from middleware import ops
from middleware.services import services

from middleware.api import cursors
from middleware.api.errors import ApiError
from middleware.api.fulfilment_schemas import (  # noqa: F401  (Page, FulfilmentSummary: imported from here too)
    ActionBody,
    ActionResult,
    AttachPlayerBody,
    FulfilmentArgs,
    FulfilmentDetail,
    FulfilmentPage,
    FulfilmentSummary,
    MakeGoodBody,
    Page,
)
from middleware.api.v1 import Blueprint

blp = Blueprint("fulfilments", __name__, url_prefix="/v1/fulfilments",
                description="Orders: list and filter them, see one with everything behind it, fix it (retry, "
                            "revoke, attach a player, make good, resolve). Reading needs a `viewer` key; the "
                            "actions `operator` or `admin` (see each).")
CURSOR_KIND = "fulfilments"


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
    with services().read_session() as session:
        rows, following = ops.list_fulfilments(session, actor(), query, args["limit"], after)
    # the rows are FulfilmentSummary's shape already (ops.summary): answered as they are, not dumped field by
    # field again (a page of 200 rows would spend milliseconds in marshmallow; tests check the two agree)
    return jsonify({"items": rows,
                    "nextCursor": encode_cursor(CURSOR_KIND, filters,
                                                None if following is None else [following[0].isoformat(),
                                                                                following[1]])})


@blp.route("/<fulfilment_id>", methods=["GET"])
@blp.response(200, FulfilmentDetail)
@blp.doc(security=[{"apiKey": []}])
def get_fulfilment(fulfilment_id):
    """One order: its rows (state, error, Kraty ledger entries), full history, the store events behind it
    (bodies decoded, secrets redacted), Kraty's webhooks about it and what the sinks were sent.

    Unknown id (or another game's order for a key limited to some games): 404 `not_found`.
    """
    with services().read_session() as session:
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
