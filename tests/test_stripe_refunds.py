"""Stripe refunds by status (issue 12): each Refund takes back once — from ``refund.*`` or
``charge.refunded``, whichever comes first — and a refund that fails or is canceled gives back, once.

Refunds are made in the Stripe fake (Stripe's Refund and Charge shapes, current API version: a Charge
without its ``refunds`` list) and their events signed by the tests.
"""
from __future__ import annotations

import pytest

from tests.support.stripe_events import balances, completed, event, inbound, order, refund_to, write_catalog
from tests.support.accelbyte import make_app  # noqa: F401  (fixture)
from tests.test_stripe_orders import deliver, new_session, paid_order


def kinds(emulator) -> list[str]:
    return [e["kind"] for e in emulator.ledger()]


def test_refund_created_alone_takes_back(client, services, redis, emulator, stripe_fake):
    """An endpoint subscribed to ``refund.*`` only: ``refund.created`` (succeeded) takes back."""
    session = paid_order(client, redis, stripe_fake, ("price_gems_100", 2))
    refund = stripe_fake.refund(payment_intent=session["payment_intent"])
    assert refund["status"] == "succeeded" and refund["amount"] == session["amount_total"]
    deliver(client, redis, event("refund.created", refund))
    assert order(services, session["id"])["state"] == "REVOKED"
    assert balances(emulator)[0] == {"gems": 0}


@pytest.mark.parametrize("first", ["refund.created", "charge.refunded"])
def test_a_refund_takes_effect_once_whichever_event_comes_first(client, services, redis, emulator, stripe_fake,
                                                                first):
    session = paid_order(client, redis, stripe_fake)
    refund, charge_refunded = refund_to(stripe_fake, session["payment_intent"], session["amount_total"])
    assert "refunds" not in charge_refunded["data"]["object"]  # API 2022-11-15 and later: not embedded
    events = [event("refund.created", refund), charge_refunded, event("refund.updated", refund)]
    if first == "charge.refunded":
        events = events[1:2] + events[:1] + events[2:]
    for ev in events:
        deliver(client, redis, ev)
    assert order(services, session["id"])["state"] == "REVOKED"
    assert kinds(emulator) == ["credit", "debit"]


@pytest.mark.parametrize("status,kind", [("failed", "refund.failed"), ("failed", "refund.updated"),
                                         ("canceled", "charge.refund.updated")])
def test_a_refund_that_fails_after_taking_back_gives_back_once(client, services, redis, emulator, stripe_fake,
                                                               status, kind):
    session = paid_order(client, redis, stripe_fake, ("price_gems_100", 2))
    refund, charge_refunded = refund_to(stripe_fake, session["payment_intent"], session["amount_total"])
    deliver(client, redis, charge_refunded)
    assert balances(emulator)[0] == {"gems": 0}
    failed = stripe_fake.update_refund(refund["id"], status=status, failure_reason="expired_or_canceled_card")
    assert stripe_fake.charge(refund["charge"])["amount_refunded"] == 0  # the money stayed with the studio
    deliver(client, redis, event(kind, failed))
    o = order(services, session["id"])
    assert o["state"] == "FULFILLED", o
    assert balances(emulator)[0] == {"gems": 200}
    for again in ("refund.failed", "refund.updated", "charge.refund.updated"):  # every event for it: once
        deliver(client, redis, event(again, failed))
    deliver(client, redis, event("refund.created", refund))   # a stale event from before it failed
    deliver(client, redis, charge_refunded)                   # and the stale charge.refunded
    assert balances(emulator)[0] == {"gems": 200}
    assert kinds(emulator) == ["credit", "debit", "credit"]


def test_refund_failed_arriving_before_charge_refunded_takes_nothing(client, services, redis, emulator,
                                                                     stripe_fake):
    session = paid_order(client, redis, stripe_fake)
    refund, charge_refunded = refund_to(stripe_fake, session["payment_intent"], session["amount_total"])
    failed = stripe_fake.update_refund(refund["id"], status="failed")
    deliver(client, redis, event("refund.failed", failed))
    deliver(client, redis, charge_refunded)                   # built when the refund still held
    deliver(client, redis, event("refund.created", refund))   # the oldest event, last
    o = order(services, session["id"])
    assert o["state"] == "FULFILLED", o
    assert kinds(emulator) == ["credit"]
    [(_, outcome, detail)] = inbound(services, charge_refunded["id"])
    assert outcome == "processed" and detail.endswith(":failed: duplicate")  # the API says it failed


def test_a_pending_refund_takes_back_when_it_succeeds_by_default(client, services, redis, emulator, stripe_fake):
    session = paid_order(client, redis, stripe_fake)
    refund = stripe_fake.refund(payment_intent=session["payment_intent"], status="pending")
    ev = event("refund.created", refund)
    deliver(client, redis, ev)
    assert order(services, session["id"])["state"] == "FULFILLED"
    assert "pending" in inbound(services, ev["id"])[0][2]
    deliver(client, redis, event("refund.updated", stripe_fake.update_refund(refund["id"], status="succeeded")))
    assert order(services, session["id"])["state"] == "REVOKED"


def test_refund_on_pending_takes_back_at_once_and_gives_back_if_canceled(make_app, redis, emulator, stripe_fake,
                                                                         catalog_path, tmp_path):
    app = make_app(catalog_path=write_catalog(catalog_path, tmp_path / "r.toml", refund_on='"pending"'))
    client, services = app.test_client(), app.extensions["kraty_bridge"]
    session = paid_order(client, redis, stripe_fake)
    refund = stripe_fake.refund(payment_intent=session["payment_intent"], status="pending")
    deliver(client, redis, event("refund.created", refund))
    assert order(services, session["id"])["state"] == "REVOKED"
    deliver(client, redis, event("refund.updated", stripe_fake.update_refund(refund["id"], status="succeeded")))
    deliver(client, redis, event("refund.updated", stripe_fake.update_refund(refund["id"], status="canceled")))
    assert order(services, session["id"])["state"] == "FULFILLED"
    assert kinds(emulator) == ["credit", "debit", "credit"]


@pytest.fixture
def proportional(make_app, catalog_path, tmp_path):  # noqa: F811
    app = make_app(catalog_path=write_catalog(catalog_path, tmp_path / "p.toml", partial_refunds='"proportional"'))
    return app.test_client(), app.extensions["kraty_bridge"]


def test_partial_refunds_add_up_and_a_failed_one_gives_back_only_its_part(proportional, redis, emulator,
                                                                          stripe_fake):
    client, services = proportional
    session = paid_order(client, redis, stripe_fake, ("price_gems_100", 1))
    total, pi = session["amount_total"], session["payment_intent"]
    first = stripe_fake.refund(payment_intent=pi, amount=total // 4)
    deliver(client, redis, event("refund.created", first))            # a quarter: 25 gems
    assert balances(emulator)[0] == {"gems": 75}
    rest, charge_refunded = refund_to(stripe_fake, pi, total)          # the rest: all of it
    deliver(client, redis, charge_refunded)
    assert order(services, session["id"])["state"] == "REVOKED"
    assert balances(emulator)[0] == {"gems": 0}
    deliver(client, redis, event("refund.failed", stripe_fake.update_refund(rest["id"], status="failed")))
    o = order(services, session["id"])
    assert o["state"] == "FULFILLED", o
    assert balances(emulator)[0] == {"gems": 75}  # the first quarter stays refunded


def test_a_partial_refund_before_its_purchase_counts_its_own_amount(proportional, redis, emulator, stripe_fake):
    client, services = proportional
    session = new_session(stripe_fake)
    refund = stripe_fake.refund(payment_intent=session["payment_intent"], amount=session["amount_total"] // 2)
    deliver(client, redis, event("refund.created", refund))
    deliver(client, redis, completed(session))
    assert order(services, session["id"])["state"] == "FULFILLED"
    assert balances(emulator)[0] == {"gems": 50}
