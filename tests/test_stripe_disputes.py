"""Stripe disputes by status (issue 12): inquiries take nothing by default, a dispute closed in the studio's
favour (``won``, ``warning_closed``, ``prevented``) gives back what it took — once, in a new cycle —,
``lost`` keeps it taken, a partial dispute follows the partial-refund policy with its own amount.
Events are not ordered: what counts is each dispute's status, whichever event carries it."""
from __future__ import annotations

import pytest

from tests.support.stripe_events import balances, dispute, event, order, write_catalog
from tests.support.accelbyte import make_app  # noqa: F401  (fixture)
from tests.test_stripe_orders import deliver, paid_order


def disputed(session: dict, status: str, kind: str = "charge.dispute.created", dispute_id: str = "du_1",
             amount: int | None = None) -> dict:
    total = session["amount_total"] if amount is None else amount
    return event(kind, dispute(session["payment_intent"], status, total, dispute_id))


def kinds(emulator) -> list[str]:
    return [e["kind"] for e in emulator.ledger()]


def app_with(make_app, catalog_path, tmp_path, **changes):  # noqa: F811
    app = make_app(catalog_path=write_catalog(catalog_path, tmp_path / "c.toml", **changes))
    return app.test_client(), app.extensions["kraty_bridge"]


def test_a_card_inquiry_takes_nothing_by_default(client, services, redis, emulator, stripe_fake):
    session = paid_order(client, redis, stripe_fake, ("price_gems_100", 2))
    deliver(client, redis, disputed(session, "warning_needs_response"))
    deliver(client, redis, disputed(session, "warning_under_review", "charge.dispute.updated"))
    o = order(services, session["id"])
    assert o["state"] == "FULFILLED" and o["attention"].startswith("card inquiry"), o
    assert balances(emulator)[0] == {"gems": 200}
    deliver(client, redis, disputed(session, "warning_closed", "charge.dispute.closed"))
    o = order(services, session["id"])
    assert o["state"] == "FULFILLED" and o["attention"] is None, o
    assert kinds(emulator) == ["credit"]


def test_inquiries_revoke_by_configuration_and_warning_closed_gives_back(make_app, redis, emulator, stripe_fake,
                                                                         catalog_path, tmp_path):
    client, services = app_with(make_app, catalog_path, tmp_path, inquiries='"revoke"')
    session = paid_order(client, redis, stripe_fake, ("price_gems_100", 2))
    deliver(client, redis, disputed(session, "warning_needs_response"))
    assert order(services, session["id"])["state"] == "REVOKED"
    closed = disputed(session, "warning_closed", "charge.dispute.closed")
    deliver(client, redis, closed)
    deliver(client, redis, closed)
    assert order(services, session["id"])["state"] == "FULFILLED"
    assert balances(emulator)[0] == {"gems": 200}
    assert kinds(emulator) == ["credit", "debit", "credit"]


@pytest.mark.parametrize("outcome", ["won", "prevented"])
def test_every_dispute_event_by_status_and_a_favourable_close_gives_back_once(client, services, redis, emulator,
                                                                              stripe_fake, outcome):
    session = paid_order(client, redis, stripe_fake, ("price_gems_100", 2))
    for status, kind in [("needs_response", "charge.dispute.created"),
                         ("needs_response", "charge.dispute.funds_withdrawn"),
                         ("under_review", "charge.dispute.updated")]:
        deliver(client, redis, disputed(session, status, kind))
    assert order(services, session["id"])["state"] == "REVOKED"
    for kind in ("charge.dispute.closed", "charge.dispute.funds_reinstated", "charge.dispute.updated"):
        deliver(client, redis, disputed(session, outcome, kind))
    o = order(services, session["id"])
    assert o["state"] == "FULFILLED", o
    assert balances(emulator)[0] == {"gems": 200}
    assert kinds(emulator) == ["credit", "debit", "credit"]  # the give-back has its own Kraty keys
    keys = [e["idempotencyKey"] for e in emulator.ledger()]
    assert len(set(keys)) == 3 and keys[2].endswith(":grant:1"), keys


@pytest.mark.parametrize("outcome,state,gems", [("lost", "REVOKED", 0), ("won", "FULFILLED", 100),
                                                ("prevented", "FULFILLED", 100)])
def test_a_dispute_closed_before_it_was_opened(client, services, redis, emulator, stripe_fake, outcome, state,
                                               gems):
    session = paid_order(client, redis, stripe_fake)
    deliver(client, redis, disputed(session, outcome, "charge.dispute.closed"))
    deliver(client, redis, disputed(session, "needs_response"))
    deliver(client, redis, disputed(session, "under_review", "charge.dispute.updated"))
    assert order(services, session["id"])["state"] == state
    assert balances(emulator)[0] == {"gems": gems}
    assert len(emulator.ledger()) == (2 if outcome == "lost" else 1)


def test_an_inquiry_that_escalates_into_a_dispute(client, services, redis, emulator, stripe_fake):
    """The same dispute moves from an inquiry to a chargeback, and is won."""
    session = paid_order(client, redis, stripe_fake)
    deliver(client, redis, disputed(session, "warning_needs_response"))
    assert order(services, session["id"])["state"] == "FULFILLED"
    deliver(client, redis, disputed(session, "needs_response", "charge.dispute.updated"))
    o = order(services, session["id"])
    assert o["state"] == "REVOKED" and o["attention"] is None, o
    deliver(client, redis, disputed(session, "won", "charge.dispute.closed"))
    deliver(client, redis, disputed(session, "warning_under_review", "charge.dispute.updated"))  # a stale one
    assert order(services, session["id"])["state"] == "FULFILLED"
    assert kinds(emulator) == ["credit", "debit", "credit"]


def test_an_inquiry_then_another_real_dispute_on_the_same_charge(client, services, redis, emulator, stripe_fake):
    session = paid_order(client, redis, stripe_fake)
    deliver(client, redis, disputed(session, "warning_needs_response", dispute_id="du_inquiry"))
    assert order(services, session["id"])["state"] == "FULFILLED"
    deliver(client, redis, disputed(session, "needs_response", dispute_id="du_chargeback"))
    assert order(services, session["id"])["state"] == "REVOKED"
    deliver(client, redis, disputed(session, "warning_closed", "charge.dispute.closed", dispute_id="du_inquiry"))
    assert order(services, session["id"])["state"] == "REVOKED"  # the inquiry took nothing: nothing to give
    deliver(client, redis, disputed(session, "lost", "charge.dispute.closed", dispute_id="du_chargeback"))
    assert order(services, session["id"])["state"] == "REVOKED"
    assert kinds(emulator) == ["credit", "debit"]


def test_a_partial_dispute_is_flagged_by_default(client, services, redis, emulator, stripe_fake):
    session = paid_order(client, redis, stripe_fake, ("price_gems_100", 4))
    deliver(client, redis, disputed(session, "needs_response", amount=session["amount_total"] // 4))
    o = order(services, session["id"])
    assert o["state"] == "FULFILLED" and o["attention"].startswith("partial dispute"), o
    assert balances(emulator)[0] == {"gems": 400}


def test_a_partial_dispute_takes_its_share_when_proportional(make_app, redis, emulator, stripe_fake, catalog_path,
                                                             tmp_path):
    client, services = app_with(make_app, catalog_path, tmp_path, partial_refunds='"proportional"')
    session = paid_order(client, redis, stripe_fake, ("price_gems_100", 4))
    deliver(client, redis, disputed(session, "needs_response", amount=session["amount_total"] // 4))
    assert order(services, session["id"])["state"] == "FULFILLED"
    assert balances(emulator)[0] == {"gems": 300}
    deliver(client, redis, disputed(session, "lost", "charge.dispute.closed", amount=session["amount_total"] // 4))
    assert balances(emulator)[0] == {"gems": 300}


def test_a_partial_take_back_won_is_flagged_with_what_to_give_back(make_app, redis, emulator, stripe_fake,
                                                                   catalog_path, tmp_path):
    """A give-back that cannot be exact (the order is no longer REVOKED) is not guessed: ops are told."""
    client, services = app_with(make_app, catalog_path, tmp_path, partial_refunds='"proportional"')
    session = paid_order(client, redis, stripe_fake, ("price_gems_100", 4))
    deliver(client, redis, disputed(session, "needs_response", amount=session["amount_total"] // 4))
    deliver(client, redis, disputed(session, "won", "charge.dispute.closed", amount=session["amount_total"] // 4))
    o = order(services, session["id"])
    assert o["state"] == "FULFILLED" and "dispute won, but the order is FULFILLED" in o["attention"], o
    assert "dispute:du_1:opened" in o["attention"]
    assert balances(emulator)[0] == {"gems": 300}
