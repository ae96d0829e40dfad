"""What reaches the sinks: the bridge's purchase events and Kraty's own events, passed on."""
from __future__ import annotations

import pytest

from tests.support.orders_flow import drain, put_order
from tests.support.sink_receiver import all_sink_overrides, server  # noqa: F401  (fixture)
from tests.support.stripe_events import completed, post, refund_to
from tests.support.kraty_webhooks import event as kraty_event
from tests.support.kraty_webhooks import send as send_kraty


@pytest.fixture
def settings_overrides(settings_overrides, server, tmp_path, catalog_path):
    return all_sink_overrides(settings_overrides, server, tmp_path, catalog_path)


def received(server) -> list[dict]:
    return [got.json for got in server.got("/all") if got.verified]


def test_fulfilled_and_failed_purchases_reach_the_sinks(client, redis, server, emulator):
    assert put_order(client, [{"itemSku": "gems_100", "quantity": 2}], txn="t-ok").status_code == 200
    emulator.faults({"path": "/inventory/sword/grant", "status": 400})  # Kraty refuses: a permanent failure
    put_order(client, [{"itemSku": "sword", "quantity": 1}], txn="t-bad")
    drain(redis)
    by_type = {body["data"]["transactionId"]: body for body in received(server)}
    ok, bad = by_type["t-ok"], by_type["t-bad"]
    assert ok["type"] == "purchase.fulfilled" and ok["playerId"] == "player-1" and ok["playerSequence"] >= 1
    assert ok["data"]["products"] == [{"sku": "gems_100", "itemId": "gems_100", "quantity": 2}]
    assert ok["data"]["store"] == "accelbyte" and ok["data"]["environment"] == "production"
    assert bad["type"] == "purchase.failed" and bad["data"]["reason"]


def test_a_refund_reaches_the_sinks_as_revoked(client, redis, server, stripe_fake):
    session = stripe_fake.session(client_reference_id="player-1", line_items=[{"price": "price_gems_100",
                                                                               "quantity": 1}])
    post(client, completed(session))
    drain(redis)
    post(client, refund_to(stripe_fake, session["payment_intent"], session["amount_total"])[1])
    drain(redis)
    types = [(body["type"], body["environment"]) for body in received(server)]
    assert types == [("purchase.fulfilled", "sandbox"), ("purchase.revoked", "sandbox")]
    sequences = [body["playerSequence"] for body in received(server)]
    assert sequences == sorted(sequences) and len(set(sequences)) == 2


def test_kraty_events_are_passed_on_unknown_types_too(client, redis, server):
    for kind in ("grant.created", "lobby.exploded"):
        assert send_kraty(client, kraty_event(kind, {"externalPlayerId": "player-9", "x": 1})).status_code == 200
    drain(redis)
    bodies = received(server)
    assert [b["type"] for b in bodies] == ["grant.created", "lobby.exploded"]
    assert bodies[0]["playerId"] == "player-9" and bodies[0]["data"]["source"] == "kraty"
