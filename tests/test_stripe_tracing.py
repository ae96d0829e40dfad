"""Refunds and disputes that name only a charge find their order (issue 12): through the charge ids a
purchase recorded (``Purchase.extra_refs``), or through Stripe's API (the Charge's ``payment_intent``).
What cannot be traced is flagged for ops after KB_UNTRACED_REVERSAL_SECONDS and counted — never a
silent wait."""
from __future__ import annotations

import json
import time

from middleware.metrics.collectors import LedgerCollector
from middleware.orders.record import record_purchase
from mappers.canonical import Purchase
from middleware.orders.reconciler import reconcile_now

from tests.support.orders_flow import drain
from tests.support.stripe_events import balances, dispute, event, inbound, latest_charge, order, post
from tests.test_stripe_orders import deliver


def only_charge(obj: dict) -> dict:
    """The object as Stripe sends it when it names no PaymentIntent."""
    return {**obj, "payment_intent": None}


def charge_calls(stripe_fake) -> list[str]:
    return [r["path"] for r in stripe_fake.requests() if r["path"].startswith("/v1/charges/")]


def refund_of(charge_id: str, amount: int, refund_id: str = "re_untraced_1") -> dict:
    """A Refund (stripe-python's model, current API version) of a charge, naming no PaymentIntent."""
    return {"id": refund_id, "object": "refund", "amount": amount, "balance_transaction": "txn_1",
            "charge": charge_id, "created": int(time.time()), "currency": "usd", "metadata": {},
            "payment_intent": None, "reason": "requested_by_customer", "receipt_number": None,
            "source_transfer_reversal": None, "status": "succeeded", "transfer_reversal": None}


def test_a_refund_naming_only_its_charge_is_traced_through_stripe(client, services, redis, emulator, stripe_fake):
    pi = stripe_fake.payment_intent(amount=100)["id"]
    direct_purchase(services, pi, None)  # recorded without its charge, as orders before charge tracing were
    charge_id = latest_charge(stripe_fake, pi)
    refund = stripe_fake.refund(charge=charge_id)
    deliver(client, redis, event("charge.refunded", only_charge(stripe_fake.charge(charge_id))))
    assert order(services, pi)["state"] == "REVOKED"
    assert balances_gems(emulator) == 0
    assert charge_calls(stripe_fake) == [f"/v1/charges/{charge_id}"]
    # the charge is now an id of the order: a dispute naming only it needs no lookup
    deliver(client, redis, event("refund.failed", only_charge(stripe_fake.update_refund(refund["id"],
                                                                                       status="failed"))))
    deliver(client, redis, event("charge.dispute.created", dispute(None, "needs_response", 100, charge_id=charge_id)))
    assert order(services, pi)["state"] == "REVOKED"
    assert [e["kind"] for e in emulator.ledger()] == ["credit", "debit", "credit", "debit"]
    assert len(charge_calls(stripe_fake)) == 1


def balances_gems(emulator) -> int:
    return balances(emulator)[0].get("gems", 0)


def direct_purchase(services, pi: str, charge_id: str | None) -> str:
    """A paid purchase recorded with its charge id among its ``extra_refs`` (as the purchase side records them),
    or without one (``None``: as orders recorded before charge tracing)."""
    purchase = Purchase(source="stripe", transaction_id=pi, player_id="player-1", environment="sandbox",
                        lines=[{"itemSku": "gems_100", "quantity": 1}], payment_ref=pi,
                        extra_refs=(charge_id,) if charge_id else (),
                        price="1.00", currency="USD")
    return record_purchase(services, services.catalog.game("demo"), purchase, "stripe").fulfilment_id


def test_the_charge_ids_a_purchase_names_are_kept_and_found(client, services, redis, emulator, stripe_fake):
    direct_purchase(services, "pi_extra_1", "ch_extra_1")
    assert order(services, "pi_extra_1")["state"] == "FULFILLED"
    deliver(client, redis, event("charge.dispute.created", dispute(None, "needs_response", 100,
                                                                   charge_id="ch_extra_1")))
    assert order(services, "pi_extra_1")["state"] == "REVOKED"
    assert charge_calls(stripe_fake) == []  # found in the ledger: Stripe was not asked


def test_an_untraceable_refund_is_flagged_counted_and_applied_if_its_purchase_comes(client, services, redis, runner,
                                                                                     emulator, stripe_fake,
                                                                                     monkeypatch):
    ev = event("refund.created", refund_of("ch_nobody_knows", 100))
    deliver(client, redis, ev)
    [(_, outcome, detail)] = inbound(services, ev["id"])
    assert outcome == "processed" and "waiting" in detail and "stripe_not_found" in detail, detail
    assert charge_calls(stripe_fake) == ["/v1/charges/ch_nobody_knows"]
    monkeypatch.setattr(services, "settings", services.settings.replace(untraced_reversal_seconds=0))
    assert reconcile_now(services, stale_seconds=3600)["untraced"] == 1
    assert reconcile_now(services, stale_seconds=3600)["untraced"] == 0  # flagged once
    gauge = {f.name: f for f in LedgerCollector(lambda: services.engine).collect()}["kb_reversals_untraced"]
    assert [(s.labels, s.value) for s in gauge.samples] == [({"source": "stripe"}, 1)]
    listed = runner.invoke(args=["events", "untraced", "--json"])
    assert listed.exit_code == 0, listed.output
    [row] = json.loads(listed.output)
    assert row["ref"] == "ch_nobody_knows" and row["kind"] == "refund" and row["outcome"].startswith("untraced")
    # the purchase comes after all, naming that charge: never granted
    fulfilment_id = direct_purchase(services, "pi_late_1", "ch_nobody_knows")
    drain(redis)
    o = order(services, "pi_late_1")
    assert o["id"] == fulfilment_id and o["state"] == "REVOKED", o
    assert emulator.ledger() == []
    gauge = {f.name: f for f in LedgerCollector(lambda: services.engine).collect()}["kb_reversals_untraced"]
    assert gauge.samples[0].value == 0


def test_a_refund_naming_neither_charge_nor_payment_intent_is_refused(client, services, stripe_fake):
    body = {**refund_of("ch_1", 100), "charge": None}
    response = post(client, event("refund.created", body))
    assert response.status_code == 400, response.get_json()
    assert inbound(services) == []
