"""Refund from the ops API and the CLI (issue 17): Stripe through the fake's ``POST /v1/refunds``, the goods
taken back once through the normal reversal path — whether the synchronous answer or the store's own events
come first — and every refusal clear, with nothing changed."""
from __future__ import annotations

import json
import time

import pytest
from sqlalchemy import select, update

from middleware.ledger.models import AuditEntry, Fulfilment, PaymentRef

from tests.support.orders_flow import drain
from tests.support.price_catalogs import catalog_with
from tests.support.price_catalogs import deliver as deliver_to
from tests.support.ops_ledger import key, order_id
from tests.support.stripe_events import balances, event, order
from tests.support.accelbyte import make_app  # noqa: F401  (fixture)
from tests.test_stripe_connect import OURS, connected
from tests.test_stripe_orders import deliver, paid_order


def kinds(emulator) -> list[str]:
    return [e["kind"] for e in emulator.ledger()]


def refund(client, headers, fulfilment_id, **body):
    return client.post(f"/v1/fulfilments/{fulfilment_id}/actions/refund", json={"reason": "ticket 77", **body},
                       headers=headers)


def fake_events(stripe_fake, *types) -> list[dict]:
    """The events the Stripe fake recorded (oldest first), as Stripe would post them."""
    listed = stripe_fake.client().v1.events.list(params={"limit": 100}).to_dict()["data"][::-1]
    return [e for e in listed if not types or e["type"] in types]


def audit(services, audit_id: int) -> AuditEntry:
    with services.session() as session:
        return session.get(AuditEntry, audit_id)


def test_a_full_refund_is_one_audited_action_and_takes_back_once(client, services, redis, emulator, stripe_fake):
    session = paid_order(client, redis, stripe_fake, ("price_gems_100", 2))
    fid, admin = order_id(services, session["id"]), key(services, "admin")
    response = refund(client, {**admin}, fid, stripeReason="requested_by_customer", idempotencyKey="t-1")
    assert response.status_code == 200, response.get_json()
    done = response.get_json()
    assert done["state"] == "REVOKED" and done["refund"]["status"] == "succeeded"
    refund_id = done["refund"]["id"]
    assert refund_id.startswith("re_") and done["refund"]["amount"] == session["amount_total"]
    assert balances(emulator)[0] == {"gems": 0} and kinds(emulator) == ["credit", "debit"]
    made = stripe_fake.client().v1.refunds.retrieve(refund_id).to_dict()
    assert made["metadata"] == {"kraty_bridge_order": fid, "kraty_bridge_audit": str(done["auditId"])}
    assert made["reason"] == "requested_by_customer"
    entry = audit(services, done["auditId"])
    assert entry.action == "refund" and entry.role == "admin" and entry.after["refund"]["id"] == refund_id
    assert entry.after["refund"]["idempotencyKey"] == f"kraty-bridge-refund-{done['auditId']}"
    with services.session() as s:  # the Refund id names the order now
        assert s.scalar(select(PaymentRef.fulfilment_id).where(PaymentRef.ref == refund_id)) == fid
    # the store's own events, after: nothing more happens
    for ev in fake_events(stripe_fake, "refund.created", "charge.refunded"):
        deliver(client, redis, ev)
    assert kinds(emulator) == ["credit", "debit"]
    # the same idempotency key: the first answer, no second refund
    again = refund(client, admin, fid, stripeReason="requested_by_customer", idempotencyKey="t-1").get_json()
    assert again["replayed"] is True and again["refund"]["id"] == refund_id
    assert len(stripe_fake.client().v1.refunds.list().data) == 1
    reused = refund(client, admin, fid, amount=5, idempotencyKey="t-1")
    assert reused.status_code == 422 and reused.get_json()["error"]["code"] == "idempotency_key_reused"


def test_stripe_events_first_then_the_answer_after_a_lost_response(client, services, redis, emulator, stripe_fake):
    """Stripe made the refund but the connection dropped before its answer: nothing is recorded as refunded;
    the store's events take the goods back; the same request again gets the same Refund (same idempotency
    key) and takes nothing more."""
    session = paid_order(client, redis, stripe_fake)
    fid, admin = order_id(services, session["id"]), key(services, "admin")
    stripe_fake.faults({"path": "^/v1/refunds$", "method": "POST", "drop": True, "phase": "after", "count": 1})
    lost = refund(client, admin, fid, idempotencyKey="t-2")
    assert lost.status_code == 503 and lost.get_json()["error"]["code"] == "store_unavailable", lost.get_json()
    audit_id = lost.get_json()["error"]["details"]["auditId"]
    assert order(services, session["id"])["state"] == "FULFILLED"   # nothing recorded as refunded
    assert audit(services, audit_id).after["refund"]["status"] == "unreachable"
    assert len(stripe_fake.client().v1.refunds.list().data) == 1      # but Stripe made it
    for ev in fake_events(stripe_fake, "refund.created", "charge.refunded"):
        deliver(client, redis, ev)
    assert order(services, session["id"])["state"] == "REVOKED" and kinds(emulator) == ["credit", "debit"]
    done = refund(client, admin, fid, idempotencyKey="t-2")
    assert done.status_code == 200, done.get_json()
    assert done.get_json()["refund"]["status"] == "succeeded" and done.get_json()["auditId"] == audit_id
    assert len(stripe_fake.client().v1.refunds.list().data) == 1 and kinds(emulator) == ["credit", "debit"]


def test_stripe_unreachable_before_the_refund_then_the_same_key_refunds(client, services, redis, emulator,
                                                                         stripe_fake):
    session = paid_order(client, redis, stripe_fake)
    fid, admin = order_id(services, session["id"]), key(services, "admin")
    stripe_fake.faults({"path": "^/v1/refunds$", "method": "POST", "status": 503, "count": 1})
    assert refund(client, admin, fid, idempotencyKey="t-3").status_code == 503
    assert stripe_fake.client().v1.refunds.list().data == [] and order(services, session["id"])["state"] == "FULFILLED"
    done = refund(client, admin, fid, idempotencyKey="t-3").get_json()
    assert done["state"] == "REVOKED" and done["replayed"] is True and kinds(emulator) == ["credit", "debit"]


def test_a_store_refusal_is_clear_and_changes_nothing(client, services, redis, emulator, stripe_fake):
    session = paid_order(client, redis, stripe_fake)
    fid, admin = order_id(services, session["id"]), key(services, "admin")
    stripe_fake.refund(payment_intent=session["payment_intent"])  # refunded in Stripe's dashboard already
    response = refund(client, admin, fid)
    body = response.get_json()["error"]
    assert response.status_code == 422 and body["code"] == "store_refused", body
    assert "already been refunded" in body["message"] and "unchanged" in body["message"]
    o = order(services, session["id"])
    assert o["state"] == "FULFILLED" and o["attention"] is None and kinds(emulator) == ["credit"]
    too_much = refund(client, admin, fid, amount=10**6)
    assert too_much.status_code == 422 and too_much.get_json()["error"]["code"] == "store_refused"


def test_a_pending_refund_waits_for_stripe_and_a_failed_one_flags_the_order(client, services, redis, emulator,
                                                                            stripe_fake):
    session = paid_order(client, redis, stripe_fake)
    fid, admin = order_id(services, session["id"]), key(services, "admin")
    stripe_fake._call("PUT", "/refund_status", {"status": "pending"})
    done = refund(client, admin, fid).get_json()
    assert done["refund"]["status"] == "pending" and done["state"] == "FULFILLED"
    failed = stripe_fake.update_refund(done["refund"]["id"], status="failed", failure_reason="lost_or_stolen_card")
    for ev in fake_events(stripe_fake, "refund.updated", "refund.failed"):
        deliver(client, redis, ev)
    o = order(services, session["id"])
    assert o["state"] == "FULFILLED" and failed["id"] in o["attention"] and "goods stay" in o["attention"], o
    assert kinds(emulator) == ["credit"]


@pytest.mark.parametrize("first", ["answer", "event"])
def test_a_pending_refund_that_succeeds_takes_back_once(client, services, redis, emulator, stripe_fake, first):
    session = paid_order(client, redis, stripe_fake)
    fid, admin = order_id(services, session["id"]), key(services, "admin")
    stripe_fake._call("PUT", "/refund_status", {"status": "pending"})
    done = refund(client, admin, fid, idempotencyKey="p").get_json()
    succeeded = stripe_fake.update_refund(done["refund"]["id"], status="succeeded")
    if first == "answer":  # a replay reads the first answer; the event does the work
        assert refund(client, admin, fid, idempotencyKey="p").get_json()["refund"]["status"] == "pending"
    deliver(client, redis, event("refund.updated", succeeded))
    deliver(client, redis, event("refund.updated", succeeded))
    for ev in fake_events(stripe_fake, "charge.refunded"):
        deliver(client, redis, ev)
    assert order(services, session["id"])["state"] == "REVOKED" and kinds(emulator) == ["credit", "debit"]


def test_a_partial_refund_follows_the_partial_refund_policy(client, services, redis, emulator, stripe_fake):
    session = paid_order(client, redis, stripe_fake, ("price_gems_100", 2))
    fid, admin = order_id(services, session["id"]), key(services, "admin")
    done = refund(client, admin, fid, amount=session["amount_total"] // 2).get_json()
    assert done["refund"]["amount"] == session["amount_total"] // 2
    o = order(services, session["id"])
    assert o["state"] == "FULFILLED" and o["attention"].startswith("partial refund"), o  # policy "flag"
    assert kinds(emulator) == ["credit"]


def test_who_may_refund_and_bad_requests(client, services, redis, emulator, stripe_fake):
    session = paid_order(client, redis, stripe_fake)
    fid = order_id(services, session["id"])
    operator, admin = key(services, "operator"), key(services, "admin")
    assert refund(client, operator, fid).status_code == 403
    for body in ({"amount": 0}, {"amount": "5"}, {"stripeReason": "because"}, {"reason": " "}, {"revoke": "no"},
                 {"unknown": 1}):
        response = refund(client, admin, fid, **body)
        assert response.status_code == 422, (body, response.get_json())
    assert refund(client, admin, fid, revoke=False).status_code == 422       # Stripe: the policy decides
    assert refund(client, admin, "nope").status_code == 404
    with services.session() as s:
        assert s.scalars(select(AuditEntry).where(AuditEntry.action == "refund")).all() == []
    assert order(services, session["id"])["state"] == "FULFILLED"


def test_app_store_and_storefront_orders_cannot_be_refunded(client, services, redis, emulator, stripe_fake):
    session = paid_order(client, redis, stripe_fake)
    fid, admin = order_id(services, session["id"]), key(services, "admin")
    with services.session() as s:  # the same order as if it had come from the App Store
        s.execute(update(Fulfilment).where(Fulfilment.id == fid).values(source="app_store"))
        s.commit()
    response = refund(client, admin, fid)
    assert response.status_code == 422 and response.get_json()["error"]["code"] == "store_cannot_refund"
    assert "App Store does not let developers refund" in response.get_json()["error"]["message"]


def test_the_cli_refunds_a_part_by_transaction_id(client, runner, services, redis, emulator, stripe_fake):
    session = paid_order(client, redis, stripe_fake, ("price_gems_100", 2))
    result = runner.invoke(args=["orders", "refund", session["id"], "--reason", "chargeback threat",
                                 "--amount", str(session["amount_total"]), "--stripe-reason", "duplicate",
                                 "--idempotency-key", "cli-1"])
    assert result.exit_code == 0 and "succeeded" in result.output and "REVOKED" in result.output, result.output
    again = runner.invoke(args=["orders", "refund", session["id"], "--reason", "chargeback threat",
                                "--amount", str(session["amount_total"]), "--stripe-reason", "duplicate",
                                "--idempotency-key", "cli-1"])
    assert again.exit_code == 0 and kinds(emulator) == ["credit", "debit"]
    refused = runner.invoke(args=["orders", "refund", session["id"], "--reason", "again"])
    assert refused.exit_code != 0 and "already been refunded" in refused.output
    shown = json.loads(runner.invoke(args=["orders", "show", session["id"], "--json"]).stdout)
    [note] = [h for h in shown["history"] if (h["detail"] or {}).get("action") == "refund"]
    assert note["actor"].startswith("cli:") and note["detail"]["refund"].startswith("re_")
    drain(redis)


def test_a_connect_order_is_refunded_on_its_connected_account(make_app, catalog_path, tmp_path, redis, emulator,
                                                              stripe_fake):
    stripe_fake.account(id=OURS)
    path = catalog_with(catalog_path, tmp_path / "connect.toml", replace={
        'disputes = "revoke_on_open"': f'disputes = "revoke_on_open"\nconnected_accounts = ["{OURS}"]'})
    app = make_app(catalog_path=path)
    client, services = app.test_client(), app.extensions["kraty_bridge"]
    s = stripe_fake.session(account=OURS, client_reference_id="player-1", line_items=[{"price": "price_gems_100"}])
    deliver_to(client, redis, connected("checkout.session.completed", s, OURS))
    fid = order_id(services, s["id"])
    done = refund(client, key(services, "admin"), fid)
    assert done.status_code == 200, done.get_json()
    assert done.get_json()["state"] == "REVOKED" and kinds(emulator) == ["credit", "debit"]
    made = stripe_fake.client().v1.refunds.list(options={"stripe_account": OURS}).data
    assert [r.id for r in made] == [done.get_json()["refund"]["id"]]
    assert stripe_fake.client().v1.refunds.list().data == []            # not on the platform account
    events = fake_events(stripe_fake, "refund.created", "charge.refunded")
    assert events and all(ev["account"] == OURS for ev in events)
    for ev in events:  # Stripe's own events for it, from the connected account: nothing more
        deliver_to(client, redis, ev)
    assert kinds(emulator) == ["credit", "debit"]


def test_the_fake_posts_its_signed_refund_events_to_the_bridge(app, client, services, redis, emulator, stripe_fake):
    """End to end as in ``make run``: the Stripe fake sends the events of the refund the bridge asked for to the
    bridge's webhook, signed; they are recorded and change nothing more."""
    from tests.support.wsgi_server import serve
    from tests.support.stripe_events import PATH, SECRET, inbound
    session = paid_order(client, redis, stripe_fake)
    fid = order_id(services, session["id"])
    with serve(app) as bridge:
        stripe_fake._call("PUT", "/webhook_endpoint", {"url": bridge + PATH, "secret": SECRET})
        done = refund(client, key(services, "admin"), fid).get_json()
        assert done["state"] == "REVOKED"
        deadline = time.monotonic() + 30
        while len(stripe_fake._call("GET", "/webhook_deliveries")["deliveries"]) < 2:
            assert time.monotonic() < deadline, "the fake did not deliver its events"
            time.sleep(0.05)
    sent = stripe_fake._call("GET", "/webhook_deliveries")["deliveries"]
    assert [(d["type"], d["status"]) for d in sent] == [("refund.created", 200), ("charge.refunded", 200)]
    drain(redis)
    recorded = {event_id: detail for event_id, _outcome, detail in inbound(services)}
    for d in sent:  # recorded, and each a duplicate of the refund the bridge already applied
        assert recorded[f"demo:{d['event']}"].endswith(":taken: duplicate"), recorded
    assert order(services, session["id"])["state"] == "REVOKED" and kinds(emulator) == ["credit", "debit"]
