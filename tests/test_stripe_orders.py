"""Stripe purchases end to end (webhook -> ledger -> worker -> Stripe fake -> Kraty emulator)."""
from __future__ import annotations

from pathlib import Path

import pytest

from middleware.orders import actions

from tests.support.orders_flow import drain, make_due, release_scheduled
from tests.support.stripe_events import balances, completed, event, inbound, order, post, refund_to, write_catalog
from tests.support.accelbyte import make_app  # noqa: F401  (fixture)


def deliver(client, redis, ev) -> dict:
    response = post(client, ev)
    assert response.status_code == 200, response.get_json()
    drain(redis)
    return response.get_json()


def new_session(stripe_fake, *lines, **kw) -> dict:
    kw.setdefault("client_reference_id", "player-1")
    items = [{"price": price, "quantity": quantity} for price, quantity in (lines or [("price_gems_100", 1)])]
    return stripe_fake.session(line_items=items, **kw)


def test_paid_checkout_session_is_fulfilled_once(client, services, redis, emulator, stripe_fake):
    session = new_session(stripe_fake, ("price_gems_100", 2), ("price_sword", 1))
    ev = completed(session)
    assert deliver(client, redis, ev)["duplicate"] is False
    o = order(services, session["id"])
    assert o["state"] == "FULFILLED", o
    assert o["environment"] == "sandbox" and o["player"] == "player-1"
    assert balances(emulator) == ({"gems": 200}, {"sword": 1})
    assert inbound(services, ev["id"])[0][1] == "processed"
    # the same event again, and a second event for the same session: nothing more
    assert deliver(client, redis, ev)["duplicate"] is True
    deliver(client, redis, event("checkout.session.async_payment_succeeded", session))
    assert balances(emulator) == ({"gems": 200}, {"sword": 1})
    assert len(emulator.ledger()) == 2


def test_prices_map_by_price_id_product_id_or_lookup_key(client, services, redis, emulator, stripe_fake):
    session = stripe_fake.session(client_reference_id="player-1", line_items=[
        {"price": "price_unlisted_1", "product": "prod_vip", "quantity": 1},          # product id (vip_monthly)
        {"price": "price_unlisted_2", "lookup_key": "gems_100", "quantity": 3},       # lookup key (gems_100)
        {"price": "price_starter_pack", "quantity": 1}])                               # price id
    deliver(client, redis, completed(session))
    assert order(services, session["id"])["state"] == "FULFILLED"
    assert balances(emulator) == ({"gems": 300 + 300 + 200}, {"vip_pass": 1, "sword": 1, "shield": 1})


def test_no_payment_required_is_granted(client, services, redis, emulator, stripe_fake):
    session = new_session(stripe_fake, payment_status="no_payment_required", payment_intent=None)
    deliver(client, redis, completed(session))
    assert order(services, session["id"])["state"] == "FULFILLED"
    assert balances(emulator)[0] == {"gems": 100}


def test_unpaid_completion_waits_for_the_async_payment(client, services, redis, emulator, stripe_fake):
    session = new_session(stripe_fake, payment_status="unpaid")
    ev = completed(session)
    deliver(client, redis, ev)
    assert order(services, session["id"]) is None
    assert inbound(services, ev["id"])[0][1:] == ("processed", "completed but unpaid: granted when the payment "
                                                               "succeeds")
    stripe_fake.update_session(session["id"], payment_status="paid")
    deliver(client, redis, event("checkout.session.async_payment_succeeded", {**session, "payment_status": "paid"}))
    assert order(services, session["id"])["state"] == "FULFILLED"
    assert balances(emulator)[0] == {"gems": 100}


@pytest.mark.parametrize("kind", ["checkout.session.async_payment_failed", "checkout.session.expired"])
def test_failed_and_expired_sessions_are_recorded_never_granted(client, services, redis, emulator, stripe_fake,
                                                                 kind):
    session = new_session(stripe_fake, payment_status="unpaid")
    ev = event(kind, session)
    deliver(client, redis, ev)
    assert order(services, session["id"]) is None
    assert inbound(services, ev["id"])[0][1] == "processed"
    assert emulator.ledger() == []


def test_the_api_is_asked_whether_the_session_is_paid(client, services, redis, emulator, stripe_fake):
    """An event saying paid about a session Stripe says is unpaid grants nothing."""
    session = new_session(stripe_fake, payment_status="unpaid")
    deliver(client, redis, completed({**session, "payment_status": "paid"}))
    o = order(services, session["id"])
    assert o["state"] == "FULFILL_FAILED" and o["reason"].startswith("stripe_not_paid")
    assert emulator.ledger() == []


# ---------------------------------------------------------------- the player
def test_player_from_the_configured_metadata_key(client, services, redis, emulator, stripe_fake):
    session = new_session(stripe_fake, client_reference_id=None, metadata={"player_id": "player-7"})
    deliver(client, redis, completed(session))
    assert order(services, session["id"])["player"] == "player-7"
    assert balances(emulator, "player-7")[0] == {"gems": 100}


def test_no_player_is_failed_player_unresolved_and_retryable_once_fixed(client, services, redis, emulator,
                                                                        stripe_fake):
    session = new_session(stripe_fake, client_reference_id=None)
    deliver(client, redis, completed(session))
    o = order(services, session["id"])
    assert o["state"] == "FULFILL_FAILED" and o["reason"].startswith("player_unresolved"), o
    assert emulator.ledger() == []
    # the studio names the player on the session in Stripe; ops retries
    stripe_fake.update_session(session["id"], metadata={"player_id": "player-3"})
    assert actions.run(services, o["id"], "ops:test", actions.RETRY) == "FULFILLED"
    assert balances(emulator, "player-3")[0] == {"gems": 100}


def test_ops_can_name_the_player_when_retrying(client, services, redis, emulator, stripe_fake):
    session = new_session(stripe_fake, client_reference_id=None)
    deliver(client, redis, completed(session))
    o = order(services, session["id"])
    assert actions.run(services, o["id"], "ops:test", actions.RETRY, player_id="player-9") == "FULFILLED"
    assert balances(emulator, "player-9")[0] == {"gems": 100}


# ---------------------------------------------------------------- line items from Stripe's API
def test_all_pages_of_line_items_are_fetched(client, services, redis, emulator, stripe_fake):
    lines = [("price_gems_100" if n % 2 else "price_sword", 1) for n in range(125)]
    session = new_session(stripe_fake, *lines)
    deliver(client, redis, completed(session))
    assert order(services, session["id"])["state"] == "FULFILLED"
    assert balances(emulator) == ({"gems": 62 * 100}, {"sword": 63})
    calls = [r for r in stripe_fake.requests() if "line_items" in r["path"]]
    assert len(calls) == 2  # the expanded first page came with the session; then 100 + 15


def test_a_session_stripe_does_not_know_is_a_permanent_failure(client, services, redis, emulator, stripe_fake):
    session = {**new_session(stripe_fake), "id": "cs_test_missing"}
    deliver(client, redis, completed(session))
    o = order(services, "cs_test_missing")
    assert o["state"] == "FULFILL_FAILED" and o["reason"].startswith("stripe_not_found"), o
    assert emulator.ledger() == []


def test_stripe_5xx_is_retried(client, services, redis, emulator, stripe_fake):
    session = new_session(stripe_fake)
    stripe_fake.faults({"path": "/v1/checkout/sessions/", "status": 503, "count": 2})
    post(client, completed(session))
    drain(redis)  # drain releases the scheduled retries
    o = order(services, session["id"])
    assert o["state"] == "FULFILLED", o
    assert balances(emulator)[0] == {"gems": 100}
    statuses = [r["status"] for r in stripe_fake.requests() if r["path"].startswith("/v1/checkout/sessions/")]
    assert statuses[:3] == [503, 503, 200]


def test_an_unknown_price_fails_until_the_catalog_knows_it(client, services, redis, emulator, stripe_fake,
                                                           make_app, catalog_path, tmp_path):
    session = new_session(stripe_fake, ("price_new_gold", 2), ("price_sword", 1))
    deliver(client, redis, completed(session))
    o = order(services, session["id"])
    assert o["state"] == "FULFILL_FAILED", o
    assert [i[4] for i in o["items"]] == ["unknown_product", None]
    assert balances(emulator) == ({}, {"sword": 1})
    text = Path(catalog_path).read_text().replace('type = "COINS"\nname = "1000 Gold"',
                                             'type = "COINS"\nname = "1000 Gold"\nstore_ids = { stripe = "price_new_gold" }')
    fixed = tmp_path / "fixed.toml"
    fixed.write_text(text)
    svc = make_app(catalog_path=str(fixed)).extensions["kraty_bridge"]
    assert actions.run(svc, o["id"], "ops:test", actions.RETRY) == "FULFILLED"
    assert balances(emulator) == ({"gold": 2000}, {"sword": 1})


# ---------------------------------------------------------------- PaymentIntents without Checkout
def pi_event(pi: dict) -> dict:
    return event("payment_intent.succeeded", pi)


def test_a_direct_payment_intent_naming_a_sku_is_fulfilled(client, services, redis, emulator, stripe_fake):
    # 2 x gems_500 at the catalog's USD 4.99: what was received covers it (config/examples/catalog.toml)
    pi = stripe_fake.payment_intent(amount=998, metadata={"kraty_sku": "gems_500", "kraty_quantity": "2",
                                                          "player_id": "player-1"})
    deliver(client, redis, pi_event(pi))
    o = order(services, pi["id"])
    assert o["state"] == "FULFILLED", o
    assert balances(emulator)[0] == {"gems": 1000}


def test_a_checkout_payment_intent_is_never_fulfilled_twice(client, services, redis, emulator, stripe_fake):
    session = new_session(stripe_fake, payment_intent_metadata={"kraty_sku": "gems_100", "player_id": "player-1"})
    pi = {"id": session["payment_intent"], "object": "payment_intent", "amount": 100, "currency": "usd",
          "metadata": {"kraty_sku": "gems_100", "player_id": "player-1"}}
    ev = pi_event(pi)
    deliver(client, redis, ev)                       # the PaymentIntent's event first: Stripe says it is Checkout's
    assert inbound(services, ev["id"])[0][1] == "ignored"
    deliver(client, redis, completed(session))
    assert balances(emulator)[0] == {"gems": 100}


def test_a_payment_intent_with_bad_metadata_is_recorded_as_failed(client, services, redis, emulator, stripe_fake):
    """Paid, so never refused (Stripe would give up after 3 days): recorded, failed, visible to ops."""
    pi = stripe_fake.payment_intent(amount=100, metadata={"kraty_sku": "gems_100", "kraty_quantity": "lots",
                                                          "player_id": "player-1"})
    ev = pi_event(pi)
    deliver(client, redis, ev)
    [(_, outcome, detail)] = inbound(services, ev["id"])
    assert outcome == "failed" and "kraty_quantity" in detail
    assert emulator.ledger() == []


def test_a_payment_intent_without_a_sku_is_ignored(client, services, redis, emulator, stripe_fake):
    pi = stripe_fake.payment_intent(amount=100, metadata={"player_id": "player-1"})
    ev = pi_event(pi)
    deliver(client, redis, ev)
    assert inbound(services, ev["id"])[0][1] == "ignored" and emulator.ledger() == []


# ---------------------------------------------------------------- refunds
def paid_order(client, redis, stripe_fake, *lines) -> dict:
    session = new_session(stripe_fake, *lines)
    deliver(client, redis, completed(session))
    return session


def refund(stripe_fake, session: dict, refunded: int) -> dict:
    """``charge.refunded`` after refunds of ``refunded`` in all (made in the Stripe fake)."""
    return refund_to(stripe_fake, session["payment_intent"], refunded)[1]


def test_a_full_refund_takes_back_everything(client, services, redis, emulator, stripe_fake):
    session = paid_order(client, redis, stripe_fake, ("price_gems_100", 2), ("price_sword", 1))
    ev = refund(stripe_fake, session, session["amount_total"])
    deliver(client, redis, ev)
    o = order(services, session["id"])
    assert o["state"] == "REVOKED", o
    wallet, inventory = balances(emulator)
    assert wallet == {"gems": 0} and inventory.get("sword", 0) == 0
    # redelivered, and Stripe's second event for the same refund: once
    deliver(client, redis, ev)
    deliver(client, redis, refund(stripe_fake, session, session["amount_total"]))
    assert len([e for e in emulator.ledger() if e["kind"] in ("debit", "revoke")]) == 2


def test_a_partial_refund_is_flagged_for_ops_by_default(client, services, redis, emulator, stripe_fake):
    session = paid_order(client, redis, stripe_fake, ("price_gems_100", 3))
    deliver(client, redis, refund(stripe_fake, session, session["amount_total"] // 3))
    o = order(services, session["id"])
    assert o["state"] == "FULFILLED" and o["attention"].startswith("partial refund"), o
    assert balances(emulator)[0] == {"gems": 300}


@pytest.fixture
def proportional(make_app, catalog_path, tmp_path):
    app = make_app(catalog_path=write_catalog(catalog_path, tmp_path / "p.toml", partial_refunds='"proportional"'))
    return app.test_client(), app.extensions["kraty_bridge"]


def test_proportional_partial_refunds_take_back_their_share_rounded_down(proportional, redis, emulator,
                                                                         stripe_fake):
    client, services = proportional
    session = paid_order(client, redis, stripe_fake, ("price_gems_100", 1), ("price_sword", 1))
    total = session["amount_total"]
    deliver(client, redis, refund(stripe_fake, session, total // 3))            # a third: 33 gems, 0 swords
    o = order(services, session["id"])
    assert o["state"] == "FULFILLED", o
    assert balances(emulator) == ({"gems": 67}, {"sword": 1})
    deliver(client, redis, refund(stripe_fake, session, total * 2 // 3))        # two thirds in all: 66 gems
    assert balances(emulator) == ({"gems": 34}, {"sword": 1})
    deliver(client, redis, refund(stripe_fake, session, total))                 # the rest
    assert order(services, session["id"])["state"] == "REVOKED"
    assert balances(emulator)[0] == {"gems": 0}


def test_a_refund_before_its_purchase_leaves_the_order_never_granted(client, services, redis, emulator,
                                                                     stripe_fake):
    session = new_session(stripe_fake)
    deliver(client, redis, refund(stripe_fake, session, session["amount_total"]))
    assert order(services, session["id"]) is None
    deliver(client, redis, completed(session))
    o = order(services, session["id"])
    assert o["state"] == "REVOKED" and "before it was granted" in o["reason"], o
    assert emulator.ledger() == []


def test_a_partial_proportional_refund_before_its_purchase_grants_the_rest(proportional, redis, emulator,
                                                                           stripe_fake):
    client, services = proportional
    session = new_session(stripe_fake, ("price_gems_100", 1))
    deliver(client, redis, refund(stripe_fake, session, session["amount_total"] // 4))
    deliver(client, redis, completed(session))
    assert order(services, session["id"])["state"] == "FULFILLED"
    assert balances(emulator)[0] == {"gems": 75}


# ---------------------------------------------------------------- disputes
def dispute_event(session, status, kind="charge.dispute.created", dispute_id="du_1"):
    from tests.support.stripe_events import dispute
    return event(kind, dispute(session["payment_intent"], status, session["amount_total"], dispute_id))


def test_a_dispute_revokes_and_a_won_dispute_grants_back(client, services, redis, emulator, stripe_fake):
    session = paid_order(client, redis, stripe_fake, ("price_gems_100", 2))
    deliver(client, redis, dispute_event(session, "needs_response"))
    assert order(services, session["id"])["state"] == "REVOKED"
    assert balances(emulator)[0] == {"gems": 0}
    deliver(client, redis, dispute_event(session, "won", "charge.dispute.closed"))
    o = order(services, session["id"])
    assert o["state"] == "FULFILLED", o
    assert balances(emulator)[0] == {"gems": 200}
    deliver(client, redis, event("charge.dispute.funds_reinstated", dispute_event(session, "won")["data"]["object"]))
    deliver(client, redis, dispute_event(session, "won", "charge.dispute.closed"))
    assert balances(emulator)[0] == {"gems": 200}


def test_a_lost_dispute_after_revoke_on_open_changes_nothing_more(client, services, redis, emulator, stripe_fake):
    session = paid_order(client, redis, stripe_fake)
    deliver(client, redis, dispute_event(session, "needs_response"))
    deliver(client, redis, dispute_event(session, "lost", "charge.dispute.closed"))
    assert order(services, session["id"])["state"] == "REVOKED"
    assert len(emulator.ledger()) == 2


def test_revoke_when_lost_waits_for_the_outcome(make_app, redis, emulator, stripe_fake, catalog_path, tmp_path):
    app = make_app(catalog_path=write_catalog(catalog_path, tmp_path / "d.toml", disputes='"revoke_when_lost"'))
    client, services = app.test_client(), app.extensions["kraty_bridge"]
    won = paid_order(client, redis, stripe_fake)
    deliver(client, redis, dispute_event(won, "needs_response", dispute_id="du_won"))
    o = order(services, won["id"])
    assert o["state"] == "FULFILLED" and o["attention"].startswith("dispute opened"), o
    deliver(client, redis, dispute_event(won, "won", "charge.dispute.closed", dispute_id="du_won"))
    o = order(services, won["id"])
    assert o["state"] == "FULFILLED" and o["attention"] is None
    lost = paid_order(client, redis, stripe_fake)
    deliver(client, redis, dispute_event(lost, "needs_response", dispute_id="du_lost"))
    deliver(client, redis, dispute_event(lost, "lost", "charge.dispute.closed", dispute_id="du_lost"))
    assert order(services, lost["id"])["state"] == "REVOKED"
    assert balances(emulator)[0] == {"gems": 100}


def test_a_dispute_won_before_it_opened_revokes_nothing(client, services, redis, emulator, stripe_fake):
    session = paid_order(client, redis, stripe_fake)
    deliver(client, redis, dispute_event(session, "won", "charge.dispute.closed"))
    deliver(client, redis, dispute_event(session, "needs_response"))
    assert order(services, session["id"])["state"] == "FULFILLED"
    assert balances(emulator)[0] == {"gems": 100}


def test_a_refund_while_kraty_is_down_is_retried_until_taken_back(client, services, redis, emulator, stripe_fake):
    session = paid_order(client, redis, stripe_fake)
    emulator.faults({"path": "/wallet/.*/debit", "status": 503, "count": 2})
    post(client, refund(stripe_fake, session, session["amount_total"]))
    for _ in range(5):
        drain(redis)
        make_due(services)
        release_scheduled(redis)
    assert order(services, session["id"])["state"] == "REVOKED"
    assert balances(emulator)[0] == {"gems": 0}
