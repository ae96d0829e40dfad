"""The Stripe fake's ``GET /v1/events`` (emulator/stripe_events.py) against the stripe library's client:
filters, newest first, mode by key, and Stripe's 400s for what Stripe refuses."""
from __future__ import annotations

import time

import pytest
import stripe


def make(stripe_fake, type_: str, created: int, livemode: bool = False, delivered: bool = False) -> dict:
    return stripe_fake._call("POST", "/events", {"type": type_, "created": created, "livemode": livemode,
                                                 "delivered": delivered, "object": {"id": "obj", "object": "x"}})


def test_filters_order_and_mode(stripe_fake):
    now = int(time.time())
    a = make(stripe_fake, "charge.refunded", now - 30)
    b = make(stripe_fake, "refund.created", now - 20, delivered=True)
    c = make(stripe_fake, "checkout.session.completed", now - 10)
    make(stripe_fake, "charge.refunded", now - 5, livemode=True)  # another mode: not seen with a test key
    client = stripe_fake.client()
    listed = client.v1.events.list(params={"limit": 10}).data
    assert [e.id for e in listed] == [c["id"], b["id"], a["id"]]
    typed = client.v1.events.list(params={"types": ["charge.refunded", "refund.created"],
                                          "created": {"gte": now - 25}}).data
    assert [e.id for e in typed] == [b["id"]]
    assert [e.id for e in client.v1.events.list(params={"type": "charge.*"}).data] == [a["id"]]
    assert [e.id for e in client.v1.events.list(params={"delivery_success": False}).data] == [c["id"], a["id"]]
    page = client.v1.events.list(params={"limit": 2})
    assert page.has_more and [e.id for e in page.data] == [c["id"], b["id"]]


@pytest.mark.parametrize("params", [{"colour": "red"}, {"types": [f"t{n}" for n in range(21)]},
                                    {"type": "a", "types": ["b"]}, {"created": {"gte": "soon"}}, {"limit": 101}])
def test_what_stripe_refuses_is_400(stripe_fake, params):
    with pytest.raises(stripe.InvalidRequestError) as raised:
        stripe_fake.client().v1.events.list(params=params)
    assert raised.value.http_status == 400
