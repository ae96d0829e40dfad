"""A purchase and its refund handled at the same moment by two workers: never granted-and-kept."""
from __future__ import annotations

import threading

from sqlalchemy import select

from middleware.ledger.models import InboundEvent
from middleware.stores.stripe_events import handle_event
from middleware.orders.reconciler import reconcile_now

from tests.support.orders_flow import drain
from tests.support.stripe_events import balances, completed, order, post, refund_to


def test_purchase_and_refund_racing_end_with_nothing_granted(client, services, redis, emulator, stripe_fake):
    sessions = [stripe_fake.session(client_reference_id="player-1",
                                    line_items=[{"price": "price_gems_100", "quantity": 1}]) for _ in range(8)]
    for s in sessions:
        assert post(client, completed(s)).status_code == 200
        refund = refund_to(stripe_fake, s["payment_intent"], s["amount_total"])[1]
        assert post(client, refund).status_code == 200
    redis.flushdb()  # the jobs are run by hand below, two at a time
    with services.session() as session:
        ids = session.scalars(select(InboundEvent.id).order_by(InboundEvent.id)).all()
    for purchase_id, refund_id in zip(ids[::2], ids[1::2]):
        barrier = threading.Barrier(2)

        def run(event_id):
            barrier.wait()
            handle_event(services, event_id)

        threads = [threading.Thread(target=run, args=(i,)) for i in (purchase_id, refund_id)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    reconcile_now(services, stale_seconds=0)  # anything left (an order that was busy) is picked up
    drain(redis)
    for s in sessions:
        o = order(services, s["id"])
        assert o["state"] == "REVOKED", o
    assert balances(emulator)[0].get("gems", 0) == 0
