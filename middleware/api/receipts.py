"""``/v1/receipts/...``: a studio backend posts a store purchase with the player it is for.

The receipt is verified with the store's own library, its ids are linked to the player (once: a
purchase redeemed by one player is refused for another), and the purchase is fulfilled — or an
order already recorded from the store's notification, held without a player, is given this one.
Answers the order: 200 when its state is final, 202 while it is being worked on (``?wait=`` up to
5 s waits for it).
"""
from __future__ import annotations

import time

from flask import g
from flask_smorest import Blueprint
from marshmallow import RAISE, Schema, fields, validate

from mappers import app_store as app_store_mapper
from mappers.accelbyte import is_clean_id
from mappers.canonical import Reversal
from middleware import api_keys, purchases
from middleware.ledger import repository as repo
from middleware.ledger import states
from middleware.services import services
from middleware.stores.app_store_verify import AppStoreVerificationError

from .app_store_webhook import verification_failed
from .errors import ApiError

blp = Blueprint("receipts", __name__, url_prefix="/v1/receipts",
                description="Store purchases posted by the studio's backend, with their player. "
                            "Needs an API key with the `receipts` role.")
MAX_WAIT = 5.0


class _Strict(Schema):
    class Meta:
        unknown = RAISE


def _player_id(value: str) -> None:
    if not is_clean_id(value):
        raise validate.ValidationError("1-128 printable characters without spaces")


class AppStoreReceipt(_Strict):
    playerId = fields.String(required=True, validate=_player_id, metadata={"description": "the Kraty player"})
    signedTransaction = fields.String(required=True, validate=validate.Length(1, 64 * 1024),
                                      metadata={"description": "the StoreKit 2 signed transaction (JWS)"})


class WaitArgs(_Strict):
    wait = fields.Float(load_default=0.0, validate=validate.Range(0, MAX_WAIT),
                        metadata={"description": "seconds to wait for a final state (0-5)"})


class ReceiptItem(Schema):
    sku = fields.String()
    kind = fields.String()
    target = fields.String()
    amount = fields.Integer()
    state = fields.String()
    error = fields.String()


class ReceiptResult(Schema):
    fulfilmentId = fields.String()
    namespace = fields.String()
    source = fields.String()
    transactionId = fields.String()
    playerId = fields.String()
    environment = fields.String()
    state = fields.String(metadata={"description": "RECEIVED, FULFILLING, FULFILLED, FULFILL_FAILED, REVOKING, "
                                                   "REVOKED or REVOKE_FAILED"})
    reason = fields.String(allow_none=True)
    items = fields.List(fields.Nested(ReceiptItem))


@blp.before_request
def _authenticate():
    g.receipts_key = api_keys.require("receipts")


def _snapshot(fulfilment_id: str) -> dict:
    with services().session() as session:
        f = repo.load(session, fulfilment_id)
        return {"fulfilmentId": f.id, "namespace": f.namespace, "source": f.source,
                "transactionId": f.transaction_id, "playerId": f.player_id, "environment": f.environment,
                "state": f.state, "reason": f.reason,
                "items": [{"sku": i.sku, "kind": i.kind, "target": i.target, "amount": i.amount - i.revoked_amount,
                           "state": i.state, "error": i.error} for i in f.items]}


def answer(fulfilment_id: str, wait: float):
    deadline = time.monotonic() + wait
    result = _snapshot(fulfilment_id)
    while result["state"] in states.ACTIVE and time.monotonic() < deadline:
        time.sleep(0.05)
        result = _snapshot(fulfilment_id)
    return result, 202 if result["state"] in states.ACTIVE else 200


def redeem(game, purchase, player_id: str, wait: float, release_keys: list[str]):
    key = g.receipts_key
    if key.namespaces is not None and game.namespace not in key.namespaces:
        raise ApiError(403, "forbidden", f"the key {key.name} may not touch namespace {game.namespace}")
    svc = services()
    actor = f"receipts:{key.name}"
    try:
        recorded = purchases.record_purchase(svc, game, purchase, actor, receipt_player=player_id)
    except purchases.OtherPlayer as exc:
        raise ApiError(409, "receipt_already_redeemed", str(exc),
                       {"fulfilmentId": exc.fulfilment_id} if exc.fulfilment_id else None) from None
    if recorded.fulfilment_id is None:  # recorded meanwhile by another request: find it
        with svc.session() as session:
            found = repo.find(session, game.namespace, purchase.source, purchase.transaction_id)
            recorded = purchases.Recorded("duplicate", found.id if found else None)
    if recorded.outcome == "duplicate_payment" or recorded.fulfilment_id is None:
        raise ApiError(409, "receipt_already_redeemed", recorded.detail or "the purchase is another order's")
    purchases.release_held(svc, game, purchase.source, player_id, release_keys, actor)
    return answer(recorded.fulfilment_id, wait)


@blp.route("/app-store", methods=["POST"])
@blp.arguments(AppStoreReceipt, location="json")
@blp.arguments(WaitArgs, location="query")
@blp.response(200, ReceiptResult, description="the order, in a final state")
@blp.alt_response(202, schema=ReceiptResult, description="the order, still being worked on")
@blp.doc(security=[{"apiKey": []}])
def app_store(body, args):
    """Redeem a StoreKit 2 signed transaction for a player.

    The same transaction posted again answers the same order; posted for another player: 409
    `receipt_already_redeemed`, nothing granted. An unverifiable transaction: 422 `receipt_invalid`
    (400 if it is not a JWS, 503 if Apple's OCSP responder could not be reached).
    """
    try:
        verified = services().app_store.transaction(body["signedTransaction"])
    except AppStoreVerificationError as exc:
        error = verification_failed(exc, "the transaction")
        if error.status in (401, 422):
            raise ApiError(422, "receipt_invalid", str(exc)) from None
        raise error from None
    game, tx = verified.game, verified.transaction
    purchase = app_store_mapper.purchase(tx, player_id=body["playerId"])
    if tx.get("revocationDate"):  # refunded or revoked already: recorded, never granted
        notice = Reversal(source=purchase.source, key=f"refund:{purchase.transaction_id}:revoked",
                          ref=purchase.transaction_id, kind="refund",
                          detail={"revocation_date": tx["revocationDate"], "from": "receipt"})
        purchases.record_reversal(services(), notice, game.namespace, f"receipts:{g.receipts_key.name}")
    keys = [value for value in (tx.get("transactionId"), tx.get("originalTransactionId")) if value]
    return redeem(game, purchase, body["playerId"], args["wait"], keys)
