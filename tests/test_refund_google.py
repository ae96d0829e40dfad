"""Refund a Google Play order (issue 17): the Publisher API's ``orders.refund`` in the fake, the goods taken back
when the voided purchase comes (notification or poll, once), or kept when asked without revoking."""
from __future__ import annotations

import pytest

from tests.support.google_play import Google, certs_server, google, make_app, voided  # noqa: F401
from tests.support.orders_flow import drain
from tests.support.ops_ledger import key, order_id
from tests.support.stripe_events import balances
from tests.test_google_play_flow import gp_order


def ask(g: Google, fulfilment_id: str, **body):
    return g.client.post(f"/v1/fulfilments/{fulfilment_id}/actions/refund",
                         json={"reason": "refund requested by mail", **body}, headers=key(g.services, "admin"))


@pytest.mark.parametrize("first", ["notification", "poll"])
def test_a_refund_with_revoke_takes_back_when_google_reports_it(google, redis, emulator, google_fake, first):
    p = google_fake.product(productId="gems_100", quantity=2)
    google.receipt("player-1", "gems_100", p["token"])
    fid = order_id(google.services, p["token"])
    done = ask(google, fid)
    assert done.status_code == 200, done.get_json()
    assert done.get_json()["refund"] == {**done.get_json()["refund"], "status": "requested", "order": p["orderId"],
                                         "revoke": True}
    assert gp_order(google.services, p["token"])["state"] == "FULFILLED"   # not before Google reports it
    refund_calls = [r for r in google_fake.requests() if r["path"].endswith(":refund")]
    assert refund_calls[0]["path"].endswith(f"/orders/{p['orderId']}:refund") and refund_calls[0]["query"] == {"revoke": "true"}
    notify = lambda: (google.push(voided(p["token"], p["orderId"])), drain(redis))  # noqa: E731
    poll = lambda: (google.app.test_cli_runner().invoke(args=["google", "poll-voided"]), drain(redis))  # noqa: E731
    for step in ((notify, poll) if first == "notification" else (poll, notify)):
        step()
    assert gp_order(google.services, p["token"])["state"] == "REVOKED"
    assert balances(emulator)[0] == {"gems": 0}
    assert [e["kind"] for e in emulator.ledger()] == ["credit", "debit"]
    again = ask(google, fid)
    assert again.status_code == 422 and again.get_json()["error"]["code"] == "store_refused"


def test_a_refund_without_revoke_keeps_the_goods(google, redis, emulator, google_fake):
    p = google_fake.product(productId="gems_100", quantity=1)
    google.receipt("player-1", "gems_100", p["token"])
    fid = order_id(google.services, p["token"])
    assert ask(google, fid, revoke=False).status_code == 200
    google.push(voided(p["token"], p["orderId"]))
    drain(redis)
    o = gp_order(google.services, p["token"])
    assert o["state"] == "FULFILLED" and balances(emulator)[0] == {"gems": 100}
    assert ask(google, fid, amount=100).status_code == 422   # Google refunds whole orders
