"""What was paid against the catalog's price: direct PaymentIntents, Checkout Sessions (coupons, modes),
under each game's price policy (config/prices.py, middleware/orders/price_check.py)."""
from __future__ import annotations

import pytest

from middleware.orders import actions

from tests.support.price_catalogs import catalog_with, deliver
from tests.support.stripe_events import balances, completed, event, inbound, order
from tests.support.accelbyte import make_app  # noqa: F401  (fixture)


def direct(stripe_fake, amount: int, sku: str, quantity: int = 1, currency: str = "usd") -> dict:
    pi = stripe_fake.payment_intent(amount=amount, currency=currency, metadata={
        "kraty_sku": sku, "kraty_quantity": str(quantity), "player_id": "player-1"})
    return event("payment_intent.succeeded", pi)


@pytest.fixture
def policy_app(make_app, catalog_path, tmp_path):
    def build(**policy):
        app = make_app(catalog_path=catalog_with(catalog_path, tmp_path / "policy.toml", policy=policy))
        return app.test_client(), app.extensions["kraty_bridge"]
    return build


# ---------------------------------------------------------------- direct PaymentIntents (enforce by default)
def test_a_one_cent_payment_intent_for_ten_thousand_mega_bundles_grants_nothing(client, services, redis, emulator,
                                                                                stripe_fake):
    ev = direct(stripe_fake, 1, "mega_bundle", 10_000)
    deliver(client, redis, ev)
    o = order(services, ev["data"]["object"]["id"])
    assert o["state"] == "FULFILL_FAILED" and o["reason"].startswith("price_mismatch"), o
    assert "paid 0.01 USD, the catalog says 99900.00" in o["reason"]
    assert o["attention"].startswith("price_mismatch")
    assert emulator.ledger() == [] and balances(emulator) == ({}, {})


def test_a_payment_intent_paying_the_price_is_granted(client, services, redis, emulator, stripe_fake):
    ev = direct(stripe_fake, 3 * 99, "gems_100", 3)
    deliver(client, redis, ev)
    o = order(services, ev["data"]["object"]["id"])
    assert o["state"] == "FULFILLED" and o["attention"] is None, o
    assert balances(emulator)[0] == {"gems": 300}


def test_amount_received_counts_not_amount(client, services, redis, emulator, stripe_fake):
    pi = stripe_fake.payment_intent(amount=499, metadata={"kraty_sku": "gems_500", "player_id": "player-1"})
    deliver(client, redis, event("payment_intent.succeeded", {**pi, "amount_received": 100}))
    assert order(services, pi["id"])["reason"].startswith("price_mismatch")
    assert emulator.ledger() == []


@pytest.mark.parametrize("sku, currency, amount", [("gold_1000", "usd", 10_000),   # no price at all
                                                  ("sword", "eur", 10_000)])      # none in that currency
def test_a_payment_intent_for_an_unpriced_sku_is_refused(client, services, redis, emulator, stripe_fake, sku,
                                                         currency, amount):
    ev = direct(stripe_fake, amount, sku, currency=currency)
    deliver(client, redis, ev)
    o = order(services, ev["data"]["object"]["id"])
    assert o["state"] == "FULFILL_FAILED" and o["reason"].startswith("price_unknown: no price declared in"), o
    assert o["attention"] and emulator.ledger() == []


def test_a_game_may_allow_unpriced_payment_intents_explicitly(policy_app, redis, emulator, stripe_fake):
    client, services = policy_app(unpriced_payment_intents="allow")
    ev = direct(stripe_fake, 1, "gold_1000")
    deliver(client, redis, ev)
    assert order(services, ev["data"]["object"]["id"])["state"] == "FULFILLED"
    assert balances(emulator)[0] == {"gold": 1000}


def test_flag_grants_and_flags_off_does_not_compare(policy_app, redis, emulator, stripe_fake):
    client, services = policy_app(payment_intent="flag")
    ev = direct(stripe_fake, 1, "gems_100")
    deliver(client, redis, ev)
    o = order(services, ev["data"]["object"]["id"])
    assert o["state"] == "FULFILLED" and o["attention"].startswith("price_mismatch: paid 0.01 USD"), o
    client, services = policy_app(payment_intent="off")
    ev = direct(stripe_fake, 1, "gems_100")
    deliver(client, redis, ev)
    o = order(services, ev["data"]["object"]["id"])
    assert o["state"] == "FULFILLED" and o["attention"] is None, o
    assert balances(emulator)[0] == {"gems": 200}


def test_ops_may_grant_a_refused_order_by_retrying_it(client, services, redis, emulator, stripe_fake):
    ev = direct(stripe_fake, 1, "gems_100")
    deliver(client, redis, ev)
    o = order(services, ev["data"]["object"]["id"])
    assert actions.run(services, o["id"], "ops:test", actions.RETRY) == "FULFILLED"
    assert balances(emulator)[0] == {"gems": 100}


# ---------------------------------------------------------------- Checkout Sessions (flag by default)
def session(stripe_fake, *lines, **kw) -> dict:
    kw.setdefault("client_reference_id", "player-1")
    return stripe_fake.session(line_items=[{"price": p, "quantity": q, "unit_amount": u} for p, q, u in lines], **kw)


def test_a_checkout_shortfall_is_granted_and_flagged_by_default(client, services, redis, emulator, stripe_fake):
    s = session(stripe_fake, ("price_gems_500", 2, 100))
    deliver(client, redis, completed(s))
    o = order(services, s["id"])
    assert o["state"] == "FULFILLED" and o["attention"] == "price_mismatch: paid 2.00 USD, the catalog says 9.98", o


def test_checkout_enforce_refuses_a_shortfall(policy_app, redis, emulator, stripe_fake):
    client, services = policy_app(checkout="enforce")
    s = session(stripe_fake, ("price_gems_500", 1, 499), ("price_sword", 1, 1))
    deliver(client, redis, completed(s))
    o = order(services, s["id"])
    assert o["state"] == "FULFILL_FAILED" and o["reason"].startswith("price_mismatch: paid 5.00 USD"), o
    assert emulator.ledger() == []


def test_a_coupon_is_honoured_and_a_100_percent_coupon_goes_through_the_policy(policy_app, redis, emulator,
                                                                               stripe_fake):
    client, services = policy_app(checkout="enforce")
    half = session(stripe_fake, ("price_gems_500", 1, 499), discount=250)
    free = session(stripe_fake, ("price_gems_500", 1, 499), discount=499, payment_status="no_payment_required")
    assert half["amount_total"] == 249 and free["amount_total"] == 0 and free["payment_intent"] is None
    for s in (half, free):
        deliver(client, redis, completed(s))
        assert order(services, s["id"])["state"] == "FULFILLED", order(services, s["id"])
    assert balances(emulator)[0] == {"gems": 1000}
    client, services = policy_app(checkout="enforce", discounts="shortfall")
    free = session(stripe_fake, ("price_gems_500", 1, 499), discount=499, payment_status="no_payment_required")
    deliver(client, redis, completed(free))
    assert order(services, free["id"])["reason"] == "price_mismatch: paid 0.00 (+4.99 discount) USD, the catalog says 4.99"


def test_no_payment_required_without_a_coupon_is_a_shortfall(policy_app, redis, emulator, stripe_fake):
    client, services = policy_app(checkout="enforce")
    s = session(stripe_fake, ("price_gems_500", 1, 0), payment_status="no_payment_required")
    deliver(client, redis, completed(s))
    assert order(services, s["id"])["reason"].startswith("price_mismatch: paid 0.00 USD")
    assert emulator.ledger() == []


@pytest.mark.parametrize("mode, status", [("subscription", "no_payment_required"),  # a free trial's start
                                          ("subscription", "paid"), ("setup", "no_payment_required")])
def test_subscription_and_setup_sessions_grant_nothing_by_themselves(client, services, redis, emulator,
                                                                     stripe_fake, mode, status):
    s = session(stripe_fake, ("price_vip_monthly", 1, 499), mode=mode, payment_status=status)
    ev = completed(s)
    deliver(client, redis, ev)
    assert order(services, s["id"]) is None
    outcome, detail = inbound(services, ev["id"])[0][1:]
    assert outcome == "processed" and f"{mode}-mode session" in detail
    assert emulator.ledger() == []


# ---------------------------------------------------------------- lines Stripe's models allow to be null
def test_a_line_without_price_or_quantity_fails_alone(client, services, redis, emulator, stripe_fake):
    s = stripe_fake.session(client_reference_id="player-1", line_items=[
        {"price": "price_gems_100", "quantity": 2, "unit_amount": 99}, {"price": None, "unit_amount": 500},
        {"price": "price_sword", "quantity": None, "unit_amount": 99}])
    assert s["line_items"]["data"][1]["price"] is None and s["line_items"]["data"][2]["quantity"] is None
    deliver(client, redis, completed(s))
    o = order(services, s["id"])
    assert o["state"] == "FULFILL_FAILED", o
    assert [(i[0], i[2], i[4]) for i in o["items"]] == [
        ("gems", "GRANTED", None), (None, "FAILED", "store_line_unreadable"), (None, "FAILED", "store_line_unreadable")]
    assert balances(emulator) == ({"gems": 200}, {})
