"""``/v1/receipts/...``: a studio backend posts a store purchase with the player it is for.

The receipt is verified with the store's own library, its ids are linked to the player (once: a
purchase redeemed by one player is refused for another), and the purchase is fulfilled — or an
order already recorded from the store's notification, held without a player, is given this one.
Answers the order: 200 when its state is final, 202 while it is being worked on (``?wait=`` up to
5 s waits for it).
"""
from __future__ import annotations

import time
from dataclasses import replace

from flask import g
from marshmallow import Schema, fields, validate

from mappers import app_store as app_store_mapper
from mappers import google_play as gp
from mappers.canonical import Reversal
from middleware.api import auth
from middleware.orders import player_links
from middleware.orders import record
from middleware.ledger import repository as repo
from middleware.ledger import states
from middleware.metrics import recorders as metrics
from middleware.services import services
from middleware.stores.app_store_verify import AppStoreVerificationError
from middleware.stores import google_play_events as events
from middleware.stores.errors import StoreError

from middleware.api.app_store_webhook import log_refusal, verification_failed
from middleware.api.errors import ApiError
from middleware.api.v1 import JWS_PATTERN, Blueprint, Strict, clean_id

blp = Blueprint("receipts", __name__, url_prefix="/v1/receipts",
                description="Store purchases posted by the studio's backend, with their player. "
                            "Needs an API key with the `receipts` role.")
MAX_WAIT = 5.0


class AppStoreReceipt(Strict):
    playerId = fields.String(required=True, validate=clean_id, metadata={"description": "the Kraty player"})
    signedTransaction = fields.String(required=True, validate=validate.Length(1, 64 * 1024),
                                      metadata={"description": "the StoreKit 2 signed transaction (JWS; anything "
                                                               "else: 400 malformed_jws)", "pattern": JWS_PATTERN})


class WaitArgs(Strict):
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
    g.receipts_key = auth.require("receipts")


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
        recorded = record.record_purchase(svc, game, purchase, actor, receipt_player=player_id)
    except record.OtherPlayer as exc:
        raise ApiError(409, "receipt_already_redeemed", str(exc),
                       {"fulfilmentId": exc.fulfilment_id} if exc.fulfilment_id else None) from None
    metrics.ingested(purchase.source, recorded.outcome == "created")  # kb_ingested_events_total
    if recorded.outcome == "duplicate_payment" or recorded.fulfilment_id is None:
        raise ApiError(409, "receipt_already_redeemed", recorded.detail or "the purchase is another order's")
    record.release_held(svc, game, purchase.source, player_id, release_keys, actor)
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
            error = ApiError(422, "receipt_invalid", str(exc))
        raise log_refusal("receipt", exc, error) from None
    game, tx = verified.game, verified.transaction
    purchase = app_store_mapper.purchase(tx, player_id=body["playerId"])
    if tx.get("revocationDate"):  # refunded or revoked already (all of it, or a prorated share)
        amount, total, summary = app_store_mapper.revoked_share(tx)
        notice = Reversal(source=purchase.source, key=f"refund:{purchase.transaction_id}:revoked",
                          ref=purchase.transaction_id, kind="refund", amount=amount, total=total,
                          detail={"revocation_date": tx["revocationDate"], "from": "receipt", "summary": summary})
        record.record_reversal(services(), notice, game.namespace, f"receipts:{g.receipts_key.name}")
    keys = [value for value in (tx.get("transactionId"), tx.get("originalTransactionId")) if value]
    return redeem(game, purchase, body["playerId"], args["wait"], keys)


def _link_pending(game, player: str, token: str) -> None:
    with services().session() as session:
        taken = player_links.link(session, game.namespace, "google_play", player, [("purchase_token", token)])
        if taken:
            session.rollback()
            raise ApiError(409, "receipt_already_redeemed", "the purchase token is linked to another player")
        session.commit()


class GooglePlayReceipt(Strict):
    playerId = fields.String(required=True, validate=clean_id, metadata={"description": "the Kraty player"})
    productId = fields.String(required=True, validate=validate.Length(1, 255),
                              metadata={"description": "the Play Console product (or subscription) id"})
    purchaseToken = fields.String(required=True, validate=validate.Length(1, 4096))
    packageName = fields.String(validate=validate.Length(1, 255),
                                metadata={"description": "needed only when several games take Google Play"})


def _google_game(body):
    catalog = services().catalog
    if "packageName" in body:
        game = catalog.by_package_name(body["packageName"])
        if game is None:
            raise ApiError(422, "not_accepted", f"no game has packageName {body['packageName']!r}")
        return game
    key = g.receipts_key
    games = [game for game in catalog.google_play_games()
             if key.namespaces is None or game.namespace in key.namespaces]
    if len(games) != 1:
        raise ApiError(422, "validation_failed", "give packageName: several games take Google Play",
                       {"fields": {"packageName": ["required when several games take Google Play"]}})
    return games[0]


@blp.route("/google-play", methods=["POST"])
@blp.arguments(GooglePlayReceipt, location="json")
@blp.arguments(WaitArgs, location="query")
@blp.response(200, ReceiptResult, description="the order, in a final state")
@blp.alt_response(202, schema=ReceiptResult, description="the order (or a PENDING purchase), still being worked on")
@blp.doc(security=[{"apiKey": []}])
def google_play(body, args):
    """Redeem a Google Play purchase token for a player.

    The purchase is read from the Publisher API: granted only when PURCHASED (a PENDING one answers
    202 with state `PENDING` and is granted when Google says it is purchased). A purchase whose
    `obfuscatedExternalAccountId` names another player: 409 `player_mismatch`. The same token for
    another player: 409 `receipt_already_redeemed`. A token Google does not know: 422 `receipt_invalid`.
    """
    game = _google_game(body)
    product = game.by_store_id(gp.SOURCE, body["productId"])
    if product is None:
        raise ApiError(422, "unknown_product", f"productId {body['productId']!r} is not in the catalog of "
                                               f"{game.namespace}")
    api, token, player = services().google_play_api, body["purchaseToken"], body["playerId"]
    try:
        if product.type == "SUBSCRIPTION":
            state = gp.subscription_v2(api.subscription(game, token))
            purchase = gp.subscription_period(token, state, player_id=player) if state.paid else None
        else:
            state = gp.product_purchase_v2(api.product(game, token))
            purchase = gp.purchase(token, state, player_id=player) if state.state == gp.PURCHASED else None
    except StoreError as exc:
        if exc.transient:
            raise ApiError(503, "store_unavailable", str(exc)) from None
        raise ApiError(422, "receipt_invalid", str(exc)) from None
    if state.obfuscated_account_id and state.obfuscated_account_id != player:
        raise ApiError(409, "player_mismatch", "the purchase names another player (obfuscatedExternalAccountId)")
    if body["productId"] not in [line["product"] for line in state.lines]:
        raise ApiError(422, "receipt_invalid", f"the purchase is not of {body['productId']}")
    if state.test and not game.allow_sandbox:
        raise ApiError(422, "not_accepted", f"test purchase: game {game.namespace} does not accept sandbox purchases")
    if purchase is None:
        if state.state != gp.PENDING:
            raise ApiError(422, "not_purchased", f"the purchase is {state.state}: nothing to grant")
        _link_pending(game, player, token)  # its notification, once purchased, finds the player
        return {"namespace": game.namespace, "source": gp.SOURCE, "transactionId": token, "playerId": player,
                "state": "PENDING", "reason": "the payment is pending: granted when Google says it is purchased",
                "items": []}, 202
    purchase = replace(purchase, followup=events.followup_for(game, purchase.lines,
                                                              subscription=product.type == "SUBSCRIPTION"))
    return redeem(game, purchase, player, args["wait"], [token])
