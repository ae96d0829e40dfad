"""GDPR erasure after Kraty's player.deleted, player merge, and the player export API.

Real signatures both ways: the tests sign Kraty's webhooks and Stripe's events, the sink server checks the
bridge's signature on every delivery.
"""
from __future__ import annotations

import base64
import json

import pytest
from rq import SimpleWorker
from sqlalchemy import select

from middleware.ledger import api_keys

from middleware.ops import privacy
from middleware.ledger import repository as repo
from middleware.ledger.models import (Delivery, Erasure, Fulfilment, HistoryEntry, InboundEvent, OutboundEvent,
                                      PlayerLink, PlayerSequence, utcnow)
from middleware.sinks.delivery import deliver_now
from workers.queues import FULFILMENT_QUEUE, queue
from middleware.orders.reconciler import scrub_deletions

from tests.support.orders_flow import drain, put_order, relay
from tests.support.sink_receiver import all_sink_overrides, server  # noqa: F401  (fixture)
from tests.support.stripe_events import completed, post
from tests.support.kraty_webhooks import event as kraty_event
from tests.support.kraty_webhooks import send as send_kraty

EMAIL = "ann.example@mail.test"   # player-gone's; every other player gets their own


@pytest.fixture
def settings_overrides(settings_overrides, server, tmp_path, catalog_path):
    return all_sink_overrides(settings_overrides, server, tmp_path, catalog_path)


def work_events(redis) -> None:
    """Handle what is queued for fulfilment and events only (the outbox relayed first): sink deliveries stay queued."""
    relay(redis)
    SimpleWorker([queue(redis, FULFILMENT_QUEUE)], connection=redis).work(burst=True, logging_level="WARNING")


def stripe_purchase(client, stripe_fake, player: str) -> dict:
    session = stripe_fake.session(client_reference_id=player,
                                  line_items=[{"price": "price_gems_100", "quantity": 1}])
    email = EMAIL if player == "player-gone" else f"{player}@mail.test"
    session = {**session, "customer_details": {"email": email, "name": "Ann Example", "phone": "+441234567890",
                                               "address": {"line1": "1 High St", "city": "Leeds"}},
               "customer_email": email}
    assert post(client, completed(session)).status_code == 200
    return session


def everything_stored(services) -> str:
    """Every row that could hold a player id or personal data, as one text to search."""
    with services.session() as session:
        parts = []
        for model in (Fulfilment, HistoryEntry, PlayerLink, OutboundEvent, PlayerSequence):
            for row in session.scalars(select(model)):
                parts.append(json.dumps({c.name: getattr(row, c.key if hasattr(c, "key") else c.name)
                                         for c in model.__table__.columns}, default=str))
        for event in session.scalars(select(InboundEvent)):
            parts.append(event.raw_body.decode("utf-8", "replace"))
            parts.append(str(event.player_id))
    return "\n".join(parts)


def operator_key(services, role="operator", namespaces=None) -> dict:
    with services.session() as session:
        key = api_keys.create(session, f"k-{role}-{len(str(namespaces))}-{utcnow().timestamp()}", role, namespaces)
        session.commit()
    return {"Authorization": f"Bearer {key}"}


# ---------------------------------------------------------------- erasure
def test_erasure_while_deliveries_are_queued(client, services, redis, server, stripe_fake):
    gone = stripe_purchase(client, stripe_fake, "player-gone")
    kept = stripe_purchase(client, stripe_fake, "player-kept")
    work_events(redis)   # both orders fulfilled; their purchase.fulfilled deliveries wait on the sink queue
    assert "player-gone" in everything_stored(services) and EMAIL in everything_stored(services)

    assert send_kraty(client, kraty_event("player.deleted", {"externalPlayerId": "player-gone",
                                                             "playerId": "kp_123"})).status_code == 200
    work_events(redis)
    drain(redis)          # now the sink queue: the deletion goes out, the erased player's purchase does not

    received = [got.json for got in server.got("/all") if got.verified]
    assert [(body["type"], body["playerId"]) for body in received if body["type"] == "player.deleted"] == \
        [("player.deleted", "player-gone")]
    purchases = [body for body in received if body["type"] == "purchase.fulfilled"]
    assert [body["playerId"] for body in purchases] == ["player-kept"]
    assert purchases[0]["data"]["price"] == "1.00" and purchases[0]["data"]["currency"] == "USD"

    with services.session() as session:
        erasure = session.scalars(select(Erasure)).one()
        cancelled = session.scalars(select(Delivery).where(Delivery.state == "cancelled")).all()
        order = repo.find(session, "demo", "stripe", gone["id"])
        assert order.player_id == erasure.placeholder and order.state == "FULFILLED"
        assert order.transaction_id == gone["id"] and order.price == "1.00"   # financial facts stay
        assert [i.amount for i in order.items] == [100]
        assert repo.find(session, "demo", "stripe", kept["id"]).player_id == "player-kept"
    assert erasure.kraty_player_id == "kp_123" and erasure.counts["fulfilments"] == 1
    assert len(cancelled) == 1 and erasure.counts["deliveries_cancelled"] == 1
    assert deliver_now(services, cancelled[0].id) == "cancelled"     # a job still queued for it sends nothing

    scrub_deletions(services)  # the reconciler anonymises the deletion event once every sink has it
    stored = everything_stored(services)
    assert "player-gone" not in stored and EMAIL not in stored
    assert stored.count("Ann Example") == stored.count("High St") == 1   # player-kept's own, untouched
    assert gone["id"] in stored and "player-kept@mail.test" in stored

    # replaying a cancelled delivery is refused, by the API as by the CLI
    answer = client.post(f"/v1/sinks/all/deliveries/{cancelled[0].id}/replay", json={"reason": "try"},
                         headers=operator_key(services))
    assert answer.status_code == 409 and answer.json["error"]["code"] == "cannot_replay"


def test_a_pending_order_of_an_erased_player_is_stopped_for_ops(client, services, redis, emulator, stripe_fake):
    emulator.faults({"path": "/wallet/gems/credit", "status": 503})  # Kraty down: the order waits
    session = stripe_purchase(client, stripe_fake, "player-pending")
    work_events(redis)
    send_kraty(client, kraty_event("player.deleted", {"externalPlayerId": "player-pending", "playerId": "kp_9"}))
    work_events(redis)
    emulator.clear_faults()
    drain(redis)
    with services.session() as s:
        order = repo.find(s, "demo", "stripe", session["id"])
        assert order.state == "FULFILL_FAILED" and order.reason == privacy.ERASED_ORDER
        assert "refund the buyer" in order.attention and order.player_id.startswith("__deleted_")
    assert emulator.ledger(sourceRefId=session["id"]) == []   # nothing granted to anybody


def test_the_same_deletion_twice_changes_nothing_more(client, services, redis, server):
    put_order(client, [{"itemSku": "gems_100", "quantity": 1}], user="player-twice", txn="t-twice")
    body = kraty_event("player.deleted", {"externalPlayerId": "player-twice", "playerId": "kp_2"})
    assert send_kraty(client, body, msg_id="msg_del").status_code == 200
    again = send_kraty(client, body, msg_id="msg_del")
    assert again.status_code == 200 and again.json["duplicate"] is True
    drain(redis)
    with services.session() as session:
        assert len(session.scalars(select(Erasure)).all()) == 1
    assert len([g for g in server.got("/all") if g.json["type"] == "player.deleted"]) == 1


def test_scrub_replaces_the_player_in_signed_and_encoded_documents():
    claims = {"appAccountToken": "player-x", "transactionId": "2000000001", "email": EMAIL}
    jws = ".".join(base64.urlsafe_b64encode(json.dumps(part).encode()).decode().rstrip("=")
                   for part in ({"alg": "ES256"}, claims, {"sig": "x"}))
    pubsub = base64.b64encode(json.dumps({"obfuscatedExternalAccountId": "player-x"}).encode()).decode()
    body = {"signedPayload": jws, "message": {"data": pubsub}, "player": "player-x", "other": "player-xy",
            "customer_details": {"email": EMAIL}, "amount": 100}
    out = privacy.scrub(body, "player-x", "__deleted_1__")
    assert out["signedPayload"] == {"_decoded": {"appAccountToken": "__deleted_1__", "transactionId": "2000000001"}}
    assert out["message"]["data"] == {"_decoded": {"obfuscatedExternalAccountId": "__deleted_1__"}}
    assert out["player"] == "__deleted_1__" and out["other"] == "player-xy" and out["amount"] == 100
    assert "customer_details" not in out
    assert json.loads(privacy.scrub_body(b"not json player-x", "player-x", "p")) == {
        "_erased": True, "note": "not JSON: dropped on erasure"}


# ---------------------------------------------------------------- merge
def test_merge_moves_a_guests_orders_holds_and_links(client, services, redis, emulator, stripe_fake):
    emulator.faults({"path": "/wallet/gems/credit", "status": 503})
    held = stripe_purchase(client, stripe_fake, "guest-1")      # Kraty down: held, retried later
    work_events(redis)
    with services.session() as session:
        session.add(PlayerLink(namespace="demo", source="app_store", kind="original_transaction", value="2000000077",
                               player_id="guest-1", created_at=utcnow()))
        session.commit()
    send_kraty(client, kraty_event("player.merged", {"fromExternalPlayerId": "guest-1",
                                                     "intoExternalPlayerId": "auth-1", "counts": {}}))
    work_events(redis)
    emulator.clear_faults()
    drain(redis)   # the held order's retry now grants to the authenticated player
    with services.session() as session:
        order = repo.load(session, repo.find(session, "demo", "stripe", held["id"]).id, history=True)
        link = session.scalars(select(PlayerLink).where(PlayerLink.value == "2000000077")).one()
        notes = [h.detail for h in order.history if h.detail and h.detail.get("event") == "player_merged"]
    assert order.player_id == "auth-1" and order.state == "FULFILLED" and link.player_id == "auth-1"
    assert notes == [{"event": "player_merged", "from": "guest-1", "into": "auth-1", "state": notes[0]["state"]}]
    assert [e["player"] for e in emulator.ledger(sourceRefId=held["id"])] == ["auth-1"]


# ---------------------------------------------------------------- export
def test_export_returns_everything_on_the_player(client, services, redis, stripe_fake):
    session = stripe_purchase(client, stripe_fake, "player-exp")
    drain(redis)
    send_kraty(client, kraty_event("wallet.changed", {"externalPlayerId": "player-exp", "currencyKey": "gems",
                                                      "delta": 5, "balance": 105, "sourceRefId": "x"}))
    drain(redis)
    answer = client.get("/v1/players/player-exp/export", headers=operator_key(services))
    assert answer.status_code == 200
    data = answer.json
    assert [f["transactionId"] for f in data["fulfilments"]] == [session["id"]]
    assert data["fulfilments"][0]["history"] and data["fulfilments"][0]["items"][0]["amount"] == 100
    assert {e["source"] for e in data["inboundEvents"]} == {"stripe", "kraty"}
    assert {e["type"] for e in data["outboundEvents"]} == {"purchase.fulfilled", "wallet.changed"}
    assert all(e["deliveries"] for e in data["outboundEvents"])


@pytest.mark.parametrize("case, status, code", [
    ("no key", 401, "unauthenticated"),
    ("viewer", 403, "forbidden"),
    ("other game key", 403, "forbidden"),
    ("unknown namespace", 404, "not_found"),
    ("unknown parameter", 422, "validation_failed"),
    ("nothing held", 404, "player_not_found"),
    ("bad player id", 400, "validation_failed"),
])
def test_export_bad_requests(client, services, case, status, code):
    put_order(client, [{"itemSku": "gems_100", "quantity": 1}], user="player-e", txn="t-e")
    headers = {"no key": {}, "viewer": operator_key(services, "viewer"),
               "other game key": operator_key(services, namespaces=["other"])}.get(case, operator_key(services))
    path = {"unknown namespace": "/v1/players/player-e/export?namespace=nope",
            "unknown parameter": "/v1/players/player-e/export?colour=red",
            "nothing held": "/v1/players/player-nobody/export",
            "other game key": "/v1/players/player-e/export?namespace=demo",
            "bad player id": "/v1/players/" + "x" * 200 + "/export"}.get(case, "/v1/players/player-e/export")
    answer = client.get(path, headers=headers)
    assert answer.status_code == status and answer.json["error"]["code"] == code, answer.json


def test_a_delivery_erased_while_it_was_being_sent_is_not_retried(services, server):
    """The sink fails the attempt that was in flight when the player was erased: no retry is scheduled."""
    from middleware.sinks.outbound_events import emit
    from middleware.sinks.http import SendResult
    from middleware.sinks.outcome import record
    with services.session() as session:
        [delivery_id] = emit(session, "purchase.fulfilled", "demo", "player-x", "production", utcnow(), {},
                             sinks=services.sinks)
        session.commit()
    with services.session() as session:
        privacy.erase(session, "demo", "player-x")
        session.commit()
    sink = services.sinks.get("all")
    assert record(services, sink, {delivery_id: 1}, SendResult(503, "HTTP 503"), utcnow(), delivery_id) == \
        "cancelled"
    with services.session() as session:
        assert session.get(Delivery, delivery_id).state == "cancelled"
