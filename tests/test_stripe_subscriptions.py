"""Subscriptions through Stripe: each paid invoice grants one period once; its refund finds it; trials grant
only the catalog's trial_sku; the invoice's payments are read from the event or fetched."""
from __future__ import annotations

from mappers import stripe as m
from mappers import stripe_invoices as mi
from middleware.stores import stripe_events

from tests.support.price_catalogs import catalog_with, deliver
from tests.support.stripe_invoices import invoice, paid_event
from tests.support.stripe_events import balances, event, inbound, order, refund_to
from tests.support.accelbyte import make_app  # noqa: F401  (fixture)

VIP = ({"gems": 300}, {"vip_pass": 1})


def period(stripe_fake, amount: int = 499) -> tuple[str, str]:
    """A succeeded PaymentIntent in the fake (its charge as latest_charge): (payment intent, charge)."""
    pi = stripe_fake.payment_intent(amount=amount)
    return pi["id"], pi["latest_charge"]


def test_each_paid_period_is_granted_once(client, services, redis, emulator, stripe_fake):
    first = invoice(payments=[period(stripe_fake)])
    ev = paid_event(first)
    deliver(client, redis, ev)
    assert order(services, first["id"])["state"] == "FULFILLED"
    assert balances(emulator) == VIP
    assert deliver(client, redis, ev)["duplicate"] is True
    deliver(client, redis, paid_event(first))  # a second event for the same invoice
    renewal = invoice(billing_reason="subscription_cycle", payments=[period(stripe_fake)])
    deliver(client, redis, paid_event(renewal))
    assert order(services, renewal["id"])["state"] == "FULFILLED"
    assert balances(emulator) == ({"gems": 600}, {"vip_pass": 2})


def test_a_refund_of_a_periods_charge_takes_that_period_back(client, services, redis, emulator, stripe_fake):
    pi, _ = period(stripe_fake)
    first, second = invoice(payments=[(pi, None)]), invoice(payments=[period(stripe_fake)])
    deliver(client, redis, paid_event(first))
    deliver(client, redis, paid_event(second))
    deliver(client, redis, refund_to(stripe_fake, pi, 499)[1])
    assert order(services, first["id"])["state"] == "REVOKED"
    assert order(services, second["id"])["state"] == "FULFILLED"
    assert balances(emulator) == VIP


def test_payments_missing_from_the_event_are_fetched(client, services, redis, emulator, stripe_fake):
    pi, _ = period(stripe_fake)
    obj = invoice()  # no "payments": it is not always included
    stripe_fake.invoice(id=obj["id"], amount_paid=499, payments=[{"payment_intent": pi}])
    deliver(client, redis, paid_event(obj))
    assert order(services, obj["id"])["state"] == "FULFILLED"
    assert any(r["path"] == "/v1/invoice_payments" for r in stripe_fake.requests())
    deliver(client, redis, refund_to(stripe_fake, pi, 499)[1])
    assert order(services, obj["id"])["state"] == "REVOKED"


def test_the_older_shape_top_level_payment_intent_and_line_price(client, services, redis, emulator, stripe_fake):
    pi, ch = period(stripe_fake)
    obj = invoice(legacy=True, payment_intent=pi, charge=ch)
    deliver(client, redis, paid_event(obj, legacy=True))
    assert order(services, obj["id"])["state"] == "FULFILLED"
    deliver(client, redis, refund_to(stripe_fake, pi, 499)[1])
    assert order(services, obj["id"])["state"] == "REVOKED"


def test_a_trial_start_grants_nothing_by_default(client, services, redis, emulator, stripe_fake):
    trial = invoice(("price_vip_monthly", "prod_vip", 1, 0), payments=[])
    ev = paid_event(trial)
    deliver(client, redis, ev)
    assert order(services, trial["id"]) is None and emulator.ledger() == []
    assert "a trial start" in inbound(services, ev["id"])[0][2]


def test_a_trial_start_grants_the_catalogs_trial_sku(make_app, catalog_path, tmp_path, redis, emulator,
                                                     stripe_fake):
    path = catalog_with(catalog_path, tmp_path / "trial.toml",
                        replace={'# trial_sku = "vip_trial"': 'trial_sku = "vip_trial"'})
    app = make_app(catalog_path=path)
    client, services = app.test_client(), app.extensions["kraty_bridge"]
    trial = invoice(("price_vip_monthly", "prod_vip", 1, 0), payments=[])
    deliver(client, redis, paid_event(trial))
    assert order(services, trial["id"])["state"] == "FULFILLED", order(services, trial["id"])
    assert balances(emulator) == ({}, {"vip_pass": 1})  # vip_trial: the pass, not the monthly gems


def test_a_shortfall_is_flagged_and_a_coupon_honoured(client, services, redis, emulator, stripe_fake):
    short = invoice(amount_paid=100, payments=[period(stripe_fake, 100)])
    deliver(client, redis, paid_event(short))
    o = order(services, short["id"])
    assert o["state"] == "FULFILLED" and o["attention"] == "price_mismatch: paid 1.00 USD, the catalog says 4.99", o
    free = invoice(discount=499, payments=[])  # a 100% coupon: nothing charged, but not a trial
    deliver(client, redis, paid_event(free))
    o = order(services, free["id"])
    assert o["state"] == "FULFILLED" and o["attention"] is None, o
    assert balances(emulator) == ({"gems": 600}, {"vip_pass": 2})


def test_credit_lines_of_a_plan_change_grant_nothing(client, services, redis, emulator, stripe_fake):
    change = invoice(("price_gems_100", "prod_gems", 1, -200), ("price_vip_monthly", "prod_vip", 1, 499),
                     billing_reason="subscription_update", payments=[period(stripe_fake, 299)], amount_paid=499)
    deliver(client, redis, paid_event(change))
    assert balances(emulator) == VIP


def test_a_line_without_a_price_fails_alone(client, services, redis, emulator, stripe_fake):
    obj = invoice(("price_vip_monthly", "prod_vip", 1, 499), (None, "prod_other", 1, 100),
                  payments=[period(stripe_fake, 599)])
    deliver(client, redis, paid_event(obj))
    o = order(services, obj["id"])
    assert [i[4] for i in o["items"]] == [None, None, "store_line_unreadable"], o
    assert balances(emulator) == VIP


def test_the_purchase_names_every_id_a_take_back_may_name():
    obj = mi.invoice(invoice(payments=[("pi_1", None), (None, "ch_2")]))
    purchase = mi.purchase_from_invoice(obj, m.parse_event(paid_event(invoice())), "player_id", [], [("pi_1", "ch_1"),
                                        (None, "ch_2")], False)
    assert purchase.payment_ref == "pi_1" and purchase.extra_refs == ("ch_1", "ch_2", obj["id"])
    assert purchase.player_id == "player-1" and purchase.price == "4.99" and purchase.price_check == "invoice"
    assert mi.payments(obj) == [("pi_1", None), (None, "ch_2")]
    direct = m.purchase_from_payment_intent(m.payment_intent({
        "id": "pi_9", "amount": 99, "amount_received": 99, "currency": "usd", "latest_charge": "ch_9",
        "metadata": {"kraty_sku": "gems_100", "player_id": "p"}}), m.parse_event(paid_event(invoice())), "player_id")
    assert direct.payment_ref == "pi_9" and direct.extra_refs == ("ch_9",) and direct.price == "0.99"


def test_checkout_and_direct_payments_name_their_charge(client, redis, emulator, stripe_fake, monkeypatch):
    """Purchase.extra_refs: the PaymentIntent's latest_charge (read from the API for a Checkout Session)."""
    seen = []
    real = stripe_events.record_purchase
    monkeypatch.setattr(stripe_events, "record_purchase", lambda svc, game, p, actor: seen.append(p) or
                        real(svc, game, p, actor))
    s = stripe_fake.session(client_reference_id="player-1", line_items=[{"price": "price_gems_100", "unit_amount": 99}])
    deliver(client, redis, event("checkout.session.completed", s))
    charge_id = stripe_fake.client().v1.payment_intents.retrieve(s["payment_intent"]).latest_charge
    assert seen[-1].payment_ref == s["payment_intent"] and seen[-1].extra_refs == (charge_id,)
    pi = stripe_fake.payment_intent(amount=99, metadata={"kraty_sku": "gems_100", "player_id": "player-1"})
    deliver(client, redis, event("payment_intent.succeeded", pi))
    assert seen[-1].payment_ref == pi["id"] and seen[-1].extra_refs == (pi["latest_charge"],)
    assert balances(emulator)[0] == {"gems": 200}


def test_an_invoice_of_a_checkout_payment_is_not_granted_again(client, services, redis, emulator, stripe_fake):
    """Checkout's invoice_creation: the session's invoice names the session's PaymentIntent: one payment, one order."""
    s = stripe_fake.session(client_reference_id="player-1", line_items=[{"price": "price_gems_100", "unit_amount": 99}])
    deliver(client, redis, event("checkout.session.completed", s))
    obj = invoice(("price_gems_100", "prod_gems", 1, 99), billing_reason="manual", payments=[(s["payment_intent"], None)])
    ev = paid_event(obj)
    deliver(client, redis, ev)
    assert "duplicate_payment" in inbound(services, ev["id"])[0][2]
    assert balances(emulator)[0] == {"gems": 100}
