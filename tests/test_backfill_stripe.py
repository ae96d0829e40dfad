"""Backfill from Stripe's events list (``/v1/events`` of the Stripe fake, emulator/stripe_events.py): a
webhook outage ends with every missed purchase and refund applied once; a second run, or the live
webhook delivering one of them late, changes nothing."""
from __future__ import annotations

import time

from sqlalchemy import func, select

from middleware.ledger.models import InboundEvent
from middleware.stores import backfill

from tests.support.orders_flow import drain
from tests.support.stripe_events import balances, completed, event, order, post, refund_to, write_catalog
from tests.support.accelbyte import make_app  # noqa: F401  (fixture)
from tests.test_stripe_orders import deliver, new_session


def missed(stripe_fake, ev: dict, delivered: bool = False) -> dict:
    """Stripe made ``ev`` (and would have sent it); the fake's events list now has it."""
    return stripe_fake._call("POST", "/events", {"id": ev["id"], "type": ev["type"], "object": ev["data"]["object"],
                                                 "livemode": ev["livemode"], "delivered": delivered})


def recorded(services) -> int:
    with services.session() as session:
        return session.scalar(select(func.count()).select_from(InboundEvent).where(InboundEvent.source == "stripe"))


def test_an_outage_is_backfilled_once(app, client, services, redis, emulator, stripe_fake):
    live = new_session(stripe_fake, ("price_gems_100", 1), client_reference_id="player-3")
    live_event = completed(live)
    deliver(client, redis, live_event)
    missed(stripe_fake, live_event, delivered=True)
    # the outage: two purchases and a refund of one of them, none delivered
    one = new_session(stripe_fake, ("price_gems_100", 2), client_reference_id="player-1")
    two = new_session(stripe_fake, ("price_sword", 1), client_reference_id="player-2")
    lost = [completed(one), completed(two)]
    refund, charge_refunded = refund_to(stripe_fake, one["payment_intent"], one["amount_total"])
    lost += [event("refund.created", refund), charge_refunded]
    for ev in lost:
        missed(stripe_fake, ev)
    missed(stripe_fake, event("customer.created", {"id": "cus_1", "object": "customer"}))  # not a type we ask for
    result = app.test_cli_runner().invoke(args=["backfill", "stripe", "--since", "2020-01-01T00:00:00Z"])
    assert result.exit_code == 0, result.output
    assert "stripe: gap 4 of 5 event(s)" in result.output
    drain(redis)
    assert order(services, one["id"])["state"] == "REVOKED"
    assert order(services, two["id"])["state"] == "FULFILLED"
    assert order(services, live["id"])["state"] == "FULFILLED"
    assert balances(emulator, "player-1")[0] == {"gems": 0}
    assert balances(emulator, "player-2")[1] == {"sword": 1}
    ledger, rows = len(emulator.ledger()), recorded(services)
    # the events list was asked for the handled types only, from --since, a page at a time
    listed = [r for r in stripe_fake.requests() if r["path"] == "/v1/events"]
    assert listed and "types[0]" in listed[0]["query"] and "created[gte]" in listed[0]["query"]
    # twice: nothing changes
    again = backfill.run(services, "stripe", 0)
    assert again["gap"] == 0 and again["found"] == 5
    # Stripe retries a missed event after the backfill got it: a duplicate
    response = post(client, lost[1])
    assert response.status_code == 200 and response.get_json()["duplicate"] is True
    drain(redis)
    assert len(emulator.ledger()) == ledger and recorded(services) == rows


def test_events_list_pages_and_window(app, services, stripe_fake):
    now = int(time.time())
    for n in range(105):
        stripe_fake._call("POST", "/events", {"type": "checkout.session.expired", "created": now - n,
                                              "object": {"id": f"cs_test_{n}", "object": "checkout.session"}})
    stripe_fake._call("POST", "/events", {"type": "checkout.session.expired", "created": now - 40 * 86400,
                                          "object": {"id": "cs_test_old", "object": "checkout.session"}})
    game = services.catalog.game("demo")
    events = backfill.STORES["stripe"][0].fetch(services, game, 0, now * 1000 + 1000)
    assert len(events) == 105 and events[0]["created"] <= events[-1]["created"]
    assert len([r for r in stripe_fake.requests() if r["path"] == "/v1/events"]) == 2


def test_a_test_mode_event_is_not_taken_when_the_game_refuses_sandbox(make_app, catalog_path, tmp_path, stripe_fake):
    app = make_app(catalog_path=write_catalog(catalog_path, tmp_path / "no-sandbox.toml", allow_sandbox="false"))
    svc = app.extensions["kraty_bridge"]
    missed(stripe_fake, completed(new_session(stripe_fake)))
    result = backfill.run(svc, "stripe", 0)
    assert result["found"] == 1 and result["gap"] == 0 and recorded(svc) == 0
