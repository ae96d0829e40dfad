"""Stripe Connect: a connected account's events are looked up on that account (the fake answers 404 to the
platform and to other accounts, as Stripe does); accounts a game does not list are recorded and rejected."""
from __future__ import annotations

import pytest
import stripe

from tests.support.price_catalogs import catalog_with, deliver
from tests.support.stripe_invoices import invoice
from tests.support.stripe_events import balances, completed, event, inbound, order, post
from tests.support.accelbyte import make_app  # noqa: F401  (fixture)

OURS, THEIRS = "acct_1KratyStudioA", "acct_1SomeoneElseB"


@pytest.fixture
def connect(make_app, catalog_path, tmp_path, stripe_fake):
    stripe_fake.account(id=OURS)
    stripe_fake.account(id=THEIRS)
    path = catalog_with(catalog_path, tmp_path / "connect.toml", replace={
        'disputes = "revoke_on_open"': f'disputes = "revoke_on_open"\nconnected_accounts = ["{OURS}"]'})
    app = make_app(catalog_path=path)
    return app.test_client(), app.extensions["kraty_bridge"]


def connected(type_: str, obj: dict, account: str) -> dict:
    return {**event(type_, obj), "account": account}


def test_the_fake_keeps_each_accounts_objects_to_itself(stripe_fake):
    stripe_fake.account(id=OURS)
    stripe_fake.account(id=THEIRS)
    s = stripe_fake.session(account=OURS, line_items=[{"price": "price_gems_100"}])
    client = stripe_fake.client()
    assert client.v1.checkout.sessions.retrieve(s["id"], options={"stripe_account": OURS}).id == s["id"]
    for where in ({}, {"stripe_account": THEIRS}):
        with pytest.raises(stripe.InvalidRequestError) as info:
            client.v1.checkout.sessions.retrieve(s["id"], options=where)
        assert info.value.http_status == 404
    with pytest.raises(stripe.PermissionError):
        client.v1.checkout.sessions.retrieve(s["id"], options={"stripe_account": "acct_1Unknown"})
    intent = client.v1.payment_intents.retrieve(s["payment_intent"], options={"stripe_account": OURS})
    assert intent.latest_charge


def test_a_connected_accounts_session_is_looked_up_on_that_account(connect, redis, emulator, stripe_fake):
    client, services = connect
    s = stripe_fake.session(account=OURS, client_reference_id="player-1",
                            line_items=[{"price": "price_gems_100", "quantity": 2}])
    deliver(client, redis, connected("checkout.session.completed", s, OURS))
    o = order(services, s["id"])
    assert o["state"] == "FULFILLED", o
    assert balances(emulator)[0] == {"gems": 200}
    calls = [r for r in stripe_fake.requests() if r["path"].startswith("/v1/")]
    assert calls and all(r["status"] == 200 for r in calls), calls


def test_an_account_the_game_does_not_list_is_recorded_and_rejected(connect, redis, emulator, stripe_fake):
    client, services = connect
    s = stripe_fake.session(account=THEIRS, client_reference_id="player-1", line_items=[{"price": "price_gems_100"}])
    ev = connected("checkout.session.completed", s, THEIRS)
    body = deliver(client, redis, ev)
    assert body["outcome"] == "rejected" and THEIRS in body["detail"] and "connected_accounts" in body["detail"]
    assert inbound(services, ev["id"]) == [(f"demo:{ev['id']}", "rejected", body["detail"])]
    assert order(services, s["id"]) is None and emulator.ledger() == []


def test_a_connected_direct_payment_intent_checks_its_sessions_on_that_account(connect, redis, emulator,
                                                                                 stripe_fake):
    client, services = connect
    pi = stripe_fake.payment_intent(account=OURS, amount=99, metadata={"kraty_sku": "gems_100",
                                                                       "player_id": "player-1"})
    deliver(client, redis, connected("payment_intent.succeeded", pi, OURS))
    assert order(services, pi["id"])["state"] == "FULFILLED"
    listed = [r for r in stripe_fake.requests() if r["path"] == "/v1/checkout/sessions"]
    assert listed and listed[-1]["status"] == 200


def test_a_connected_accounts_invoice_payments_are_fetched_on_that_account(connect, redis, emulator, stripe_fake):
    client, services = connect
    pi = stripe_fake.payment_intent(account=OURS, amount=499)
    obj = invoice()  # no payments in the event: fetched, on the account
    stripe_fake.invoice(id=obj["id"], account=OURS, amount_paid=499, payments=[{"payment_intent": pi["id"]}])
    deliver(client, redis, connected("invoice.paid", obj, OURS))
    assert order(services, obj["id"])["state"] == "FULFILLED"
    calls = [(r["path"], r["status"]) for r in stripe_fake.requests() if r["path"].startswith("/v1/")]
    assert ("/v1/invoice_payments", 200) in calls and (f"/v1/payment_intents/{pi['id']}", 200) in calls, calls
    stripe_fake.refund(charge=pi["latest_charge"], amount=499)
    deliver(client, redis, connected("charge.refunded", stripe_fake.charge(pi["latest_charge"]), OURS))
    assert order(services, obj["id"])["state"] == "REVOKED"


@pytest.mark.parametrize("change", [{"account": "cus_123"}, {"account": 7}, {"mode": 3}, {"total_details": "x"}])
def test_a_malformed_account_mode_or_total_details_is_400_and_changes_nothing(client, services, stripe_fake, change):
    s = stripe_fake.session(client_reference_id="player-1", line_items=[{"price": "price_gems_100"}])
    ev = completed(s)
    if "account" in change:
        ev.update(change)
    else:
        ev["data"]["object"].update(change)
    response = post(client, ev)
    assert response.status_code == 400 and response.get_json()["error"]["code"] == "malformed_event"
    assert inbound(services) == []
