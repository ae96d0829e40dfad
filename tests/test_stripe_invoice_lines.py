"""An invoice whose event carries only the first page of its lines (``lines.has_more``): the rest is read through
Stripe's API (``GET /v1/invoices/{invoice}/lines``, stripe-python's ``Invoice.list_lines``, cursor
``starting_after`` the last line held) and granted with them; it was recorded ``failed`` before."""
from __future__ import annotations

import stripe

from middleware.stores import stripe_api

from tests.support.price_catalogs import deliver
from tests.support.stripe_invoices import invoice, paid_event
from tests.support.stripe_events import balances, inbound, order
from tests.support.accelbyte import make_app  # noqa: F401  (fixture)


def _paged(stripe_fake, lines: int, carried: int) -> dict:
    """An invoice of ``lines`` VIP periods in the fake, whose event carries the first ``carried``."""
    pi = stripe_fake.payment_intent(amount=499 * lines)
    obj = invoice(*[("price_vip_monthly", "prod_vip", 1, 499)] * lines, payments=[(pi["id"], pi["latest_charge"])])
    stripe_fake.invoice(id=obj["id"], amount_paid=499 * lines, payments=[{"payment_intent": pi["id"]}],
                        lines=obj["lines"]["data"])
    obj["lines"] = {**obj["lines"], "data": obj["lines"]["data"][:carried], "has_more": True}
    return obj


def test_the_lines_an_event_does_not_carry_are_fetched_page_by_page(client, services, redis, emulator, stripe_fake,
                                                                     monkeypatch):
    monkeypatch.setattr(stripe_api, "PAGE", 2)   # 5 lines, 1 carried: the other 4 in two pages of 2
    obj = _paged(stripe_fake, lines=5, carried=1)
    deliver(client, redis, paid_event(obj))
    got = order(services, obj["id"])
    assert got["state"] == "FULFILLED" and len(got["items"]) == 10, got   # 5 lines x (gems, vip_pass)
    assert balances(emulator) == ({"gems": 1500}, {"vip_pass": 5})
    pages = [r for r in stripe_fake.requests() if r["path"] == f"/v1/invoices/{obj['id']}/lines"]
    assert len(pages) == 2


def test_an_invoice_stripe_does_not_know_is_failed_with_the_reason(client, services, redis, emulator, stripe_fake):
    pi = stripe_fake.payment_intent(amount=998)
    obj = invoice(("price_vip_monthly", "prod_vip", 1, 499), payments=[(pi["id"], pi["latest_charge"])])
    obj["lines"] = {**obj["lines"], "has_more": True}   # but the fake has no such invoice: Stripe's 404
    deliver(client, redis, paid_event(obj))
    (_, outcome, detail), = inbound(services)
    assert outcome == "failed" and f"could not read the lines of invoice {obj['id']}" in detail
    assert order(services, obj["id"]) is None and balances(emulator) == ({}, {})


def test_the_fake_pages_an_invoices_lines_as_stripe_does(stripe_fake):
    obj = invoice(*[("price_vip_monthly", "prod_vip", 1, 499)] * 3)
    stripe_fake.invoice(id=obj["id"], amount_paid=1497, lines=obj["lines"]["data"])
    client = stripe.StripeClient("sk_test_fake", base_addresses={"api": stripe_fake.url})
    first = client.v1.invoices.line_items.list(obj["id"], params={"limit": 2})
    assert [line.id for line in first.data] == [line["id"] for line in obj["lines"]["data"][:2]] and first.has_more
    rest = client.v1.invoices.line_items.list(obj["id"], params={"limit": 2, "starting_after": first.data[-1].id})
    assert [line.id for line in rest.data] == [obj["lines"]["data"][2]["id"]] and rest.has_more is False
    assert rest.data[0].object == "line_item" and rest.data[0].invoice == obj["id"]
