"""Refund from the console (issue 17): the order page's refund form (admin, CSRF, idempotency key), the
App Store explanation with Apple's consumption requests, and refusals shown on the page with nothing changed."""
from __future__ import annotations

import html
import re

from sqlalchemy import update

from middleware.ledger import repository as repo
from middleware.ledger.models import Fulfilment

from tests.support.ops_ledger import order_id
from tests.support.stripe_events import balances, order
from tests.support.accelbyte import make_app  # noqa: F401  (fixture)
from tests.test_console import app, csrf_of, sign_in, text  # noqa: F401  (fixture)
from tests.test_stripe_orders import paid_order


def refund_form(client, fulfilment_id, **form):
    """Post the refund form as the order page renders it (its CSRF token and idempotency key)."""
    page = text(client.get(f"/console/orders/{fulfilment_id}"))
    [idem] = re.findall(r'name="idempotency_key" value="([^"]+-refund)"', page)
    data = {"csrf_token": csrf_of(client.get(f"/console/orders/{fulfilment_id}")), "idempotency_key": idem,
            "reason": "customer wrote in", **form}
    return client.post(f"/console/orders/{fulfilment_id}/refund", data=data), data


def test_an_admin_refunds_from_the_order_page(client, services, redis, emulator, stripe_fake):
    session = paid_order(client, redis, stripe_fake, ("price_gems_100", 2))
    fid = order_id(services, session["id"])
    sign_in(client, services, "admin")
    page = text(client.get(f"/console/orders/{fid}"))
    assert "Refund through Stripe" in page and 'name="amount"' in page and "requested_by_customer" in page
    response, data = refund_form(client, fid, stripe_reason="requested_by_customer")
    assert response.status_code == 303, text(response)
    shown = html.unescape(text(client.get(response.headers["Location"])))
    assert "Refund asked: refund re_" in shown and "is succeeded; the goods are taken back" in shown
    assert "The order is REVOKED now" in shown and balances(emulator)[0] == {"gems": 0}
    assert re.search(r'class="refunds">.*?<span class="mono">re_', shown, re.S)   # the refund, listed
    again = client.post(f"/console/orders/{fid}/refund", data=data)                # the form sent twice
    assert again.status_code == 303
    assert "already sent" in html.unescape(text(client.get(again.headers["Location"])))
    assert len(stripe_fake.client().v1.refunds.list().data) == 1


def test_refusals_show_on_the_page_and_change_nothing(client, services, redis, emulator, stripe_fake):
    session = paid_order(client, redis, stripe_fake)
    fid = order_id(services, session["id"])
    sign_in(client, services, "admin")
    bad_amount, _ = refund_form(client, fid, amount="2.50")
    assert bad_amount.status_code == 422 and "whole cents" in html.unescape(text(bad_amount))
    stripe_fake.refund(payment_intent=session["payment_intent"])
    refused, _ = refund_form(client, fid)
    page = html.unescape(text(refused))
    assert refused.status_code == 422 and "store_refused" in page and "already been refunded" in page
    no_csrf = client.post(f"/console/orders/{fid}/refund", data={"reason": "x"})
    assert no_csrf.status_code == 400
    assert order(services, session["id"])["state"] == "FULFILLED" and balances(emulator)[0] == {"gems": 100}


def test_an_operator_sees_that_refunds_need_an_admin(client, services, redis, emulator, stripe_fake):
    session = paid_order(client, redis, stripe_fake)
    fid = order_id(services, session["id"])
    sign_in(client, services, "operator")
    page = text(client.get(f"/console/orders/{fid}"))
    assert "needs an admin key" in page and "/refund" not in page
    response = client.post(f"/console/orders/{fid}/refund", data={"csrf_token": csrf_of(client.get(
        f"/console/orders/{fid}")), "reason": "x"})
    assert response.status_code == 403 and order(services, session["id"])["state"] == "FULFILLED"


def test_an_app_store_order_says_why_and_links_apples_consumption_requests(client, services, redis, emulator,
                                                                          stripe_fake):
    session = paid_order(client, redis, stripe_fake)
    fid = order_id(services, session["id"])
    with services.session() as s:  # the order as if it came from the App Store, with Apple's request answered
        s.execute(update(Fulfilment).where(Fulfilment.id == fid).values(source="app_store"))
        repo.note(repo.load(s, fid), "app_store:consumption", {"event": "consumption_request", "reason":
                                                               "UNINTENDED_PURCHASE", "sent": True})
        s.commit()
    sign_in(client, services, "admin")
    page = html.unescape(text(client.get(f"/console/orders/{fid}")))
    assert "The App Store does not let developers refund" in page and "Refund through" not in page
    [link] = re.findall(r'class="consumption">\s*<li><a href="#history-(\d+)"', page)
    assert f'id="history-{link}"' in page and "UNINTENDED_PURCHASE" in page
