"""flask orders: list, show, retry, revoke — and what bad references get."""
from __future__ import annotations

import getpass
import json

from sqlalchemy import select

from middleware.ledger.models import AuditEntry

from tests.support.orders_flow import drain
from tests.support.stripe_events import balances, completed, order, post


def failed_order(client, redis, services, stripe_fake) -> dict:
    session = stripe_fake.session(client_reference_id=None, line_items=[{"price": "price_gems_100", "quantity": 1}])
    post(client, completed(session))
    drain(redis)
    return order(services, session["id"]) | {"session": session["id"]}


def test_list_show_retry_and_revoke(client, runner, redis, services, emulator, stripe_fake):
    o = failed_order(client, redis, services, stripe_fake)
    listed = runner.invoke(args=["orders", "list", "--state", "FULFILL_FAILED"])
    assert listed.exit_code == 0 and o["id"] in listed.output and "player_unresolved" in listed.output
    shown = runner.invoke(args=["orders", "show", o["session"], "--json"])  # by the store's transaction id
    assert shown.exit_code == 0, shown.output
    detail = json.loads(shown.stdout)
    assert detail["id"] == o["id"] and detail["state"] == "FULFILL_FAILED"
    assert detail["inboundEvents"][0]["type"] == "checkout.session.completed"
    readable = runner.invoke(args=["orders", "show", o["id"]]).output
    assert "FULFILL_FAILED" in readable and "checkout.session.completed" in readable and "Timeline" in readable
    retried = runner.invoke(args=["orders", "retry", o["id"], "--player", "player-4", "--reason", "ticket 9"])
    assert retried.exit_code == 0 and retried.output.strip().endswith("FULFILLED"), retried.output
    assert balances(emulator, "player-4")[0] == {"gems": 100}
    revoked = runner.invoke(args=["orders", "revoke", o["id"], "--reason", "goodwill test"])
    assert revoked.exit_code == 0 and "REVOKED" in revoked.output
    assert balances(emulator, "player-4")[0] == {"gems": 0}
    actors = [h["actor"] for h in json.loads(runner.invoke(args=["orders", "show", o["id"], "--json"]).stdout)["history"]]
    assert f"cli:{getpass.getuser()}" in actors
    with services.session() as session:
        audited = [(e.action, e.actor, e.reason) for e in session.scalars(
            select(AuditEntry).where(AuditEntry.target_id == o["id"]).order_by(AuditEntry.id))]
    assert audited == [("attach-player", f"cli:{getpass.getuser()}", "ticket 9"),
                       ("revoke", f"cli:{getpass.getuser()}", "goodwill test")]


def test_bad_references_and_options_fail_clearly(runner):
    missing = runner.invoke(args=["orders", "show", "nope"])
    assert missing.exit_code != 0 and "no order nope" in missing.output
    assert runner.invoke(args=["orders", "revoke", "nope"]).exit_code != 0            # --reason is required
    assert "--reason" in runner.invoke(args=["orders", "retry", "nope"]).output        # here too
    assert "no order nope" in runner.invoke(args=["orders", "resolve", "nope", "--reason", "r"]).output
    assert runner.invoke(args=["orders", "list", "--state", "WHATEVER"]).exit_code != 0
    assert runner.invoke(args=["orders", "list", "--limit", "0"]).exit_code != 0


def test_events_list_and_replay(client, runner, redis, services, stripe_fake):
    from tests.support.stripe_events import event, inbound
    pi = stripe_fake.payment_intent(amount=100, metadata={"kraty_sku": "gems_100", "kraty_quantity": "many",
                                                          "player_id": "player-1"})
    ev = event("payment_intent.succeeded", pi)
    post(client, ev)
    drain(redis)
    [(_, outcome, _)] = inbound(services, ev["id"])
    assert outcome == "failed"
    listed = runner.invoke(args=["events", "list", "--outcome", "failed"])
    assert listed.exit_code == 0 and ev["id"] in listed.output and "kraty_quantity" in listed.output
    event_id = listed.output.splitlines()[1].split()[0]  # under the header
    replayed = runner.invoke(args=["events", "replay", event_id])
    assert replayed.exit_code == 0 and "replayed" in replayed.output
    assert inbound(services, ev["id"])[0][1] == "pending"
    drain(redis)
    assert inbound(services, ev["id"])[0][1] == "failed"  # the metadata is still wrong: failed again, visibly
    assert runner.invoke(args=["events", "replay", "999999"]).exit_code != 0
    ignored = post(client, event("customer.created", {"id": "cus_1"}))
    assert ignored.status_code == 200
    ignored_id = json.loads(runner.invoke(args=["events", "list", "--outcome", "ignored", "--json"]).stdout)[0]["id"]
    refused = runner.invoke(args=["events", "replay", str(ignored_id)])
    assert refused.exit_code != 0 and "nothing to handle" in refused.output
    assert runner.invoke(args=["events", "list", "--outcome", "nope"]).exit_code != 0
