"""mappers/stripe_reversals.py: pure mapping of Stripe Refund and Dispute statuses (stripe-python's models)."""
from __future__ import annotations

import pytest
from marshmallow import ValidationError

from mappers import stripe_reversals as sr

from tests.support.stripe_events import dispute


def refund(status: str, **kw) -> dict:
    return sr.refund_object({"id": "re_1", "object": "refund", "amount": 250, "charge": {"id": "ch_1"},
                             "payment_intent": "pi_1", "currency": "usd", "status": status, **kw})


@pytest.mark.parametrize("status,refund_on,key", [
    ("succeeded", "succeeded", "refund:re_1:taken"), ("pending", "succeeded", None),
    ("pending", "pending", "refund:re_1:taken"), ("requires_action", "pending", None),
    ("failed", "succeeded", "refund:re_1:failed"), ("canceled", "pending", "refund:re_1:failed"),
    ("some_future_status", "succeeded", None)])
def test_refund_statuses(status, refund_on, key):
    notice = sr.refund_notice(refund(status), "pi_1", 1000, "evt_1", refund_on)
    assert (notice and notice.key) == key
    if notice:
        assert (notice.amount, notice.total, notice.currency, notice.detail["charge"]) == (250, 1000, "USD", "ch_1")


@pytest.mark.parametrize("status,key,kind", [
    ("warning_needs_response", "dispute:du_1:inquiry", sr.DISPUTE_INQUIRY),
    ("warning_under_review", "dispute:du_1:inquiry", sr.DISPUTE_INQUIRY),
    ("warning_closed", "dispute:du_1:won", sr.DISPUTE_WON),
    ("needs_response", "dispute:du_1:opened", sr.DISPUTE_OPENED),
    ("under_review", "dispute:du_1:opened", sr.DISPUTE_OPENED),
    ("appeal_under_review", "dispute:du_1:opened", sr.DISPUTE_OPENED),
    ("won", "dispute:du_1:won", sr.DISPUTE_WON), ("prevented", "dispute:du_1:won", sr.DISPUTE_WON),
    ("lost", "dispute:du_1:lost", sr.DISPUTE_LOST), ("charge_refunded", None, None)])
def test_dispute_statuses(status, key, kind):
    notice = sr.dispute_notice(sr.dispute_object(dispute("pi_1", status, 400)), "pi_1", None, "evt_1")
    assert (notice and (notice.key, notice.kind)) == (key and (key, kind))


def test_a_dispute_or_refund_naming_nothing_is_refused_and_expanded_objects_are_ids():
    with pytest.raises(ValidationError):
        sr.dispute_object({**dispute(None, "lost", charge_id="ch_x"), "charge": None})
    with pytest.raises(ValidationError):
        sr.check("refund.created", {"id": "re_1", "amount": 1, "charge": None, "payment_intent": None})
    loaded = sr.dispute_object({**dispute(None, "lost", charge_id="ch_x"), "charge": {"id": "ch_9", "amount": 700}})
    assert loaded["charge"] == "ch_9" and sr.charge_total(loaded["charge_object"]) == 700


def test_a_charge_embedding_its_refunds_is_read_as_it_is():
    charge = {"id": "ch_1", "amount": 500, "amount_refunded": 500, "refunded": True, "payment_intent": "pi_1",
              "refunds": {"object": "list", "has_more": False, "data": [
                  {"id": "re_1", "amount": 500, "charge": "ch_1", "status": "succeeded"}]}}
    assert [r["id"] for r in sr.charge_object(charge)["embedded_refunds"]] == ["re_1"]
    assert sr.charge_object({**charge, "refunds": {**charge["refunds"], "has_more": True}})["embedded_refunds"] is None


@pytest.mark.parametrize("price,currency,minor", [("4.99", "USD", 499), ("500", "JPY", 500), ("1.234", "KWD", 1234),
                                                  (None, "USD", None), ("4.995", "USD", None)])
def test_minor_units(price, currency, minor):
    assert sr.minor_units(price, currency) == minor
