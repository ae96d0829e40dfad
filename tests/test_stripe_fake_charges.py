"""The fake Stripe API's charges and refunds (emulator/stripe_charges.py), driven through the real ``stripe``
library the way kraty-bridge calls it (middleware/stores/stripe_api.py)."""
# ruff: noqa: F811  (the fixtures imported below are test parameters)
from __future__ import annotations

import pytest
import stripe

from middleware.stores.errors import StoreError
from middleware.stores.stripe_api import StripeApi

from tests.support.stripe_fake import TEST_KEY, stripe_api_url, stripe_fake  # noqa: F401


def paid(stripe_fake, amount: int = 1000, **kw) -> dict:
    return stripe_fake.payment_intent(amount=amount, **kw)


def test_a_succeeded_payment_intent_has_a_charge_without_embedded_refunds(stripe_fake):
    pi = paid(stripe_fake)
    charge = stripe_fake.client().v1.charges.retrieve(pi["latest_charge"])
    assert charge.id == pi["latest_charge"] and charge.payment_intent == pi["id"]
    assert (charge.amount, charge.amount_refunded, charge.refunded, charge.status) == (1000, 0, False, "succeeded")
    assert "refunds" not in charge  # API version 2022-11-15 and later


def test_refunds_move_the_charge_and_list_by_charge_newest_first(stripe_fake):
    pi = paid(stripe_fake)
    first = stripe_fake.refund(payment_intent=pi["id"], amount=300)
    second = stripe_fake.refund(charge=pi["latest_charge"], amount=200, status="pending")
    assert first["object"] == "refund" and first["status"] == "succeeded" and first["payment_intent"] == pi["id"]
    assert stripe_fake.charge(pi["latest_charge"])["amount_refunded"] == 500
    client = stripe_fake.client()
    listed = client.v1.refunds.list(params={"charge": pi["latest_charge"]})
    assert [r.id for r in listed.data] == [second["id"], first["id"]]
    page = client.v1.refunds.list(params={"payment_intent": pi["id"], "limit": 1})
    assert [r.id for r in page.data] == [second["id"]] and page.has_more
    failed = stripe_fake.update_refund(first["id"], status="failed")
    assert failed["failure_reason"] == "expired_or_canceled_card"
    assert client.v1.refunds.retrieve(first["id"]).status == "failed"
    assert stripe_fake.charge(pi["latest_charge"])["amount_refunded"] == 200  # a failed refund gives the money back
    rest = stripe_fake.refund(payment_intent=pi["id"])
    assert rest["amount"] == 800 and stripe_fake.charge(pi["latest_charge"])["refunded"] is True


def test_the_bridge_client_lists_every_page_oldest_first(stripe_fake, stripe_api_url):
    pi = paid(stripe_fake, amount=250)
    made = [stripe_fake.refund(payment_intent=pi["id"], amount=1)["id"] for _ in range(203)]
    api = StripeApi(stripe_api_url, timeout=10)
    assert [r["id"] for r in api.refunds_of(TEST_KEY, pi["latest_charge"])] == made
    assert api.charge(TEST_KEY, pi["latest_charge"])["amount_refunded"] == 203
    with pytest.raises(StoreError) as missing:
        api.charge(TEST_KEY, "ch_missing")
    assert missing.value.code == "stripe_not_found" and not missing.value.transient
    stripe_fake.faults({"path": "/v1/refunds", "status": 503, "count": 1})
    with pytest.raises(StoreError) as down:
        api.refunds_of(TEST_KEY, pi["latest_charge"])
    assert down.value.transient


def test_unknown_ids_other_modes_and_bad_refunds(stripe_fake):
    live = paid(stripe_fake, livemode=True)
    client = stripe_fake.client()
    with pytest.raises(stripe.InvalidRequestError) as other_mode:
        client.v1.charges.retrieve(live["latest_charge"])
    assert other_mode.value.http_status == 404 and "live mode" in str(other_mode.value)
    with pytest.raises(stripe.InvalidRequestError) as unknown:
        client.v1.refunds.list(params={"charge": "ch_nope"})
    assert unknown.value.http_status == 404
    pi = paid(stripe_fake, amount=100)
    for body in ({"payment_intent": pi["id"], "amount": 101}, {"charge": "ch_nope"},
                 {"payment_intent": pi["id"], "status": "lost"}, {"payment_intent": pi["id"], "colour": 1}):
        with pytest.raises(AssertionError, match="400"):
            stripe_fake.refund(**body)
