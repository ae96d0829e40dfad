"""Past purchases imported as orders granted elsewhere: Kraty is not called for them, a later refund takes the
goods back once through the normal path, a receipt or notification for one grants nothing, bad rows fail alone."""
from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from middleware.ledger import api_keys
from middleware.ledger import repository as repo
from middleware.ledger.models import Fulfilment, HistoryEntry, PaymentRef
from middleware.orders.reconciler import reconcile_now

from tests.support.app_store import apple, make_app  # noqa: F401  (fixtures)
from tests.support.google_play import certs_server, google, voided  # noqa: F401  (fixtures)
from tests.support.apple_ca import transaction
from tests.support.orders_flow import drain
from tests.support.import_files import plain_row, rc_row, write_csv, write_jsonl, write_revenuecat
from tests.support.stripe_events import balances, event, order, post


def run_import(runner, path, *args):
    return runner.invoke(args=["import", "purchases", str(path), "--namespace", "demo", *args])


def migrate_gems(runner, tmp_path, player="player-1", balance=1000):
    path = write_csv(tmp_path / "wallets.csv", [{"player_id": player, "currency": "gems", "balance": str(balance)}],
                     ["player_id", "currency", "balance"])
    result = runner.invoke(args=["import", "kraty-wallets", str(path), "--namespace", "demo"])
    assert result.exit_code == 0, result.output


def history(services, txn, source="stripe"):
    with services.session() as session:
        f = session.scalars(select(Fulfilment).where(Fulfilment.transaction_id == txn,
                                                     Fulfilment.source == source)).one()
        return [(h.from_state, h.to_state, h.actor, h.detail) for h in
                session.scalars(select(HistoryEntry).where(HistoryEntry.fulfilment_id == f.id)
                                .order_by(HistoryEntry.id))]


def refund_event(pi: str, amount: int = 198, kind: str = "refund.created") -> dict:
    """A succeeded Refund of the imported payment (stripe-python's Refund; the charge the import did not name)."""
    return event(kind, {"id": f"re_{pi}", "object": "refund", "amount": amount, "balance_transaction": "txn_imp",
                        "charge": f"ch_{pi}", "created": 1767225600, "currency": "usd", "metadata": {},
                        "payment_intent": pi, "reason": "requested_by_customer", "receipt_number": None,
                        "source_transfer_reversal": None, "status": "succeeded", "transfer_reversal": None})


def test_an_imported_stripe_purchase_is_granted_elsewhere_then_a_late_refund_takes_it_back_once(
        runner, client, services, redis, emulator, tmp_path):
    migrate_gems(runner, tmp_path)
    path = write_csv(tmp_path / "p.csv", [plain_row("cs_imp_1", quantity="2")])
    result = run_import(runner, path)
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[0] == "1 row: 1 applied, 0 skipped (already present), 0 failed"
    o = order(services, "cs_imp_1")
    assert o["state"] == "FULFILLED" and o["reason"].startswith("granted elsewhere") and o["player"] == "player-1"
    assert o["items"] == [("gems", 200, "GRANTED", 0, None)]
    [(before, after, actor, detail)] = history(services, "cs_imp_1")
    assert (before, after, actor) == (None, "FULFILLED", "cli:import") and detail["granted_elsewhere"] is True
    assert [e["kind"] for e in emulator.ledger()] == ["migrate"]  # Kraty was not called for the purchase
    reconcile_now(services, 0.0)  # never picked up: nothing is owed on it
    drain(redis)
    assert [e["kind"] for e in emulator.ledger()] == ["migrate"]

    ev = refund_event("pi_imp_1")
    assert post(client, ev).status_code == 200
    drain(redis)
    assert order(services, "cs_imp_1")["state"] == "REVOKED"
    assert balances(emulator)[0] == {"gems": 800}
    post(client, ev)                             # redelivered
    post(client, refund_event("pi_imp_1", kind="refund.updated"))  # and Stripe's second event for the same refund
    drain(redis)
    debits = [e for e in emulator.ledger() if e["kind"] == "debit"]
    assert [d["idempotencyKey"] for d in debits] == ["stripe:cs_imp_1:0.0:revoke:0"]


def test_the_same_file_again_skips_every_row_and_changes_nothing(runner, services, tmp_path):
    path = write_jsonl(tmp_path / "p.jsonl", [plain_row("cs_again_1"), plain_row("cs_again_2")])
    assert run_import(runner, path).exit_code == 0
    again = run_import(runner, path, "--json")
    assert again.exit_code == 0
    body = json.loads(again.stdout)
    assert (body["applied"], body["skipped"], body["failed"]) == (0, 2, 0)
    with services.session() as session:
        assert session.query(Fulfilment).count() == 2
        assert {r.ref for r in session.scalars(select(PaymentRef))} == {"cs_again_1", "pi_again_1", "cs_again_2",
                                                                         "pi_again_2"}


def test_a_checkout_event_for_an_imported_session_grants_nothing(client, services, redis, emulator, runner,
                                                                 stripe_fake, tmp_path):
    session = stripe_fake.session(line_items=[{"price": "price_gems_100", "quantity": 1}],
                                  client_reference_id="player-1")
    path = write_csv(tmp_path / "p.csv", [plain_row(session["id"], payment_intent=session["payment_intent"])])
    assert run_import(runner, path).exit_code == 0
    assert post(client, event("checkout.session.completed", session)).status_code == 200
    drain(redis)
    assert emulator.ledger() == []
    assert order(services, session["id"])["state"] == "FULFILLED"


def test_bad_rows_fail_alone_with_their_reasons(runner, services, emulator, tmp_path):
    rows = [plain_row("cs_ok_1"),
            plain_row("cs_bad_sku", sku="no_such_sku"),
            plain_row("cs_bad_time", purchased_at="yesterday"),
            plain_row("cs_no_player", player_id=None),
            plain_row("cs_ok_1", player_id="player-2"),          # the same purchase for another player
            plain_row("cs_ok_2", state="refunded"),
            {**plain_row("cs_extra"), "colour": "red"},
            plain_row("cs_nul", product_id="com.demo\u0000gems", sku=None)]
    path = write_jsonl(tmp_path / "p.jsonl", rows, bad_lines=("{not json",))
    result = run_import(runner, path, "--json")
    assert result.exit_code == 1
    body = json.loads(result.stdout)
    assert (body["rows"], body["applied"], body["skipped"], body["failed"]) == (9, 2, 0, 7)
    reasons = {f["row"]: f["reason"] for f in body["failures"]}
    assert reasons[2].startswith("30343: Item of sku [no_such_sku]")
    assert reasons[3].startswith("purchased_at: an ISO 8601 time")
    assert reasons[4] == "player_id: Missing data for required field."
    assert reasons[5] == "row 1 has this purchase for another player"
    assert reasons[7] == "colour: Unknown field."
    assert reasons[8].startswith("text the ledger cannot store")
    assert reasons[9].startswith("not a JSON object")
    refunded = order(services, "cs_ok_2")
    assert refunded["state"] == "REVOKED" and refunded["items"] == [("gems", 100, "REVOKED", 100, None)]
    assert emulator.ledger() == []


def test_a_dry_run_checks_every_row_and_writes_nothing(runner, services, tmp_path):
    path = write_csv(tmp_path / "p.csv", [plain_row("cs_dry_1"), plain_row("cs_dry_2", sku="nope")])
    result = run_import(runner, path, "--dry-run")
    assert result.exit_code == 1
    assert result.stdout.splitlines()[0] == ("2 rows: 1 would be applied, 0 skipped (already present), 1 failed "
                                             "(dry run: nothing written)")
    with services.session() as session:
        assert session.query(Fulfilment).count() == 0 and session.query(PaymentRef).count() == 0


def test_progress_goes_to_stderr_and_exit_codes(runner, tmp_path):
    path = write_csv(tmp_path / "p.csv", [plain_row(f"cs_prog_{i}") for i in range(5)])
    result = run_import(runner, path, "--batch-size", "2")
    assert result.exit_code == 0
    assert result.stderr.splitlines()[:4] == ["importing 5 purchases: 0/3", "importing 5 purchases: 1/3",
                                              "importing 5 purchases: 2/3", "importing 5 purchases: 3/3"]
    assert "rows/s" in result.stderr and "importing" not in result.stdout
    parallel = run_import(runner, write_csv(tmp_path / "q.csv", [plain_row(f"cs_par_{i}") for i in range(7)]),
                          "--batch-size", "2", "--jobs", "3", "--json")
    assert parallel.exit_code == 0 and json.loads(parallel.stdout)["applied"] == 7
    missing = runner.invoke(args=["import", "purchases", str(tmp_path / "none.csv"), "--namespace", "demo"])
    assert missing.exit_code == 2  # a usage error (click): the file does not exist
    unknown = run_import_ns(runner, path, "nowhere")
    assert unknown.exit_code == 1 and unknown.stderr.strip() == "Error: no game has namespace 'nowhere' in the catalog"


def run_import_ns(runner, path, namespace):
    return runner.invoke(args=["import", "purchases", str(path), "--namespace", namespace])


def test_a_refund_that_came_before_the_import_is_applied_by_it(client, runner, services, redis, emulator,
                                                               tmp_path):
    migrate_gems(runner, tmp_path)
    assert post(client, refund_event("pi_early_1", 99)).status_code == 200
    drain(redis)
    assert run_import(runner, write_csv(tmp_path / "p.csv", [plain_row("cs_early_1")])).exit_code == 0
    drain(redis)
    assert order(services, "cs_early_1")["state"] == "REVOKED"
    assert balances(emulator)[0] == {"gems": 900}


# ---------------------------------------------------------------- App Store, RevenueCat's export
def test_revenuecat_export_then_receipts_and_an_app_store_refund(apple, redis, emulator, tmp_path):  # noqa: F811
    runner = apple.app.test_cli_runner()
    migrate_gems(runner, tmp_path, balance=500)
    rows = [rc_row("2000000000000101"),
            rc_row("2000000000000102", refunded_at="2025-03-02 09:00:00"),
            rc_row("2000000000000103", user="$RCAnonymousID:87c6049c58069238dce29853916d624c",
                   rc_last_seen_app_user_id_alias="$RCAnonymousID:87c6049c58069238dce29853916d624c"),
            rc_row("GPA.1234-5678-9012-34567", store="play_store", product="gems_100"),
            rc_row("x1", store="promotional")]
    result = runner.invoke(args=["import", "purchases", str(write_revenuecat(tmp_path / "rc.csv", rows)),
                                 "--namespace", "demo", "--format", "revenuecat", "--json"])
    assert result.exit_code == 1
    body = json.loads(result.stdout)
    assert (body["applied"], body["failed"]) == (2, 3)
    reasons = [f["reason"] for f in body["failures"]]
    assert reasons[0].startswith("an anonymous RevenueCat customer")
    assert reasons[1].startswith("a Google Play one-time product: RevenueCat's export has its order id")
    assert reasons[2].startswith("RevenueCat store 'promotional'")

    t = transaction(transaction_id="2000000000000101")
    again = apple.receipt("player-1", t, wait=5)      # the game replays the purchase: recognised, nothing granted
    assert again.status_code == 200 and again.get_json()["state"] == "FULFILLED"
    other = apple.receipt("player-2", t)               # another player's replay is refused
    assert other.status_code == 409
    drain(redis)
    assert [e["kind"] for e in emulator.ledger()] == ["migrate"]
    assert apple.notify("REFUND", tx={**t, "revocationDate": 1}).status_code == 200
    drain(redis)
    assert balances(emulator)[0] == {"gems": 400}
    assert apple.notify("REFUND", tx={**transaction(transaction_id="2000000000000102"),
                                      "revocationDate": 1}).status_code == 200  # refunded before the move
    drain(redis)
    assert balances(emulator)[0] == {"gems": 400}
    assert [e["kind"] for e in emulator.ledger()] == ["migrate", "debit"]


def gp_state(services, token):
    with services.session() as session:
        f = repo.find(session, "demo", "google_play", token)
        return f.state, [(i.target, i.amount, i.state) for i in f.items]


def test_a_google_play_purchase_keyed_by_its_token_then_a_receipt_and_a_voided_purchase(  # noqa: F811
        google, redis, emulator, google_fake, tmp_path):
    runner = google.app.test_cli_runner()
    migrate_gems(runner, tmp_path, balance=300)
    p = google_fake.product(productId="gems_100", quantity=2)
    row = plain_row(p["orderId"], store="google_play", purchase_token=p["token"], payment_intent=None, sku=None,
                    product_id="gems_100", quantity="2")
    assert run_import(runner, write_csv(tmp_path / "g.csv", [row])).exit_code == 0
    assert gp_state(google.services, p["token"]) == ("FULFILLED", [("gems", 200, "GRANTED")])
    again = google.receipt("player-1", "gems_100", p["token"])   # the game replays it: nothing granted
    assert again.status_code == 200 and again.get_json()["state"] == "FULFILLED"
    assert google.receipt("player-2", "gems_100", p["token"]).status_code == 409
    drain(redis)
    assert [e["kind"] for e in emulator.ledger()] == ["migrate"]
    google_fake.void(p["token"])
    assert google.push(voided(p["token"], p["orderId"])).status_code == 200
    drain(redis)
    assert gp_state(google.services, p["token"]) == ("REVOKED", [("gems", 200, "REVOKED")])
    assert balances(emulator)[0] == {"gems": 100}


# ---------------------------------------------------------------- POST /v1/imports
@pytest.fixture
def admin_key(services):
    with services.session() as session:
        key = api_keys.create(session, "migrator", "admin")
        operator = api_keys.create(session, "support", "operator")
        session.commit()
    return {"Authorization": f"Bearer {key}"}, {"Authorization": f"Bearer {operator}"}


def test_the_api_answers_a_result_per_row(client, services, emulator, admin_key):
    admin, _ = admin_key
    rows = [plain_row("cs_api_1"), plain_row("cs_api_2", quantity="0"), "not an object"]
    dry = client.post("/v1/imports", json={"namespace": "demo", "rows": rows, "dryRun": True}, headers=admin)
    assert dry.status_code == 200 and dry.get_json()["applied"] == 1
    with services.session() as session:
        assert session.query(Fulfilment).count() == 0
    response = client.post("/v1/imports", json={"namespace": "demo", "rows": rows}, headers=admin)
    assert response.status_code == 200
    body = response.get_json()
    assert (body["dryRun"], body["applied"], body["skipped"], body["failed"]) == (False, 1, 0, 2)
    first, second, third = body["results"]
    assert first["status"] == "applied" and first["orderId"] == order(services, "cs_api_1")["id"]
    assert second == {"row": 2, "status": "failed", "transactionId": "cs_api_2",
                      "reason": "quantity: Must be greater than or equal to 1 and less than or equal to 10000."}
    assert third == {"row": 3, "status": "failed", "transactionId": None, "reason": "a row must be an object"}
    again = client.post("/v1/imports", json={"namespace": "demo", "rows": rows[:1]}, headers=admin).get_json()
    assert again["results"][0]["status"] == "skipped" and again["results"][0]["orderId"] == first["orderId"]
    assert history(services, "cs_api_1")[0][2] == "key:migrator"
    assert emulator.ledger() == []


@pytest.mark.parametrize("body, status, field", [
    ({"namespace": "demo", "rows": []}, 422, "rows"),
    ({"namespace": "demo", "rows": [{}] * 1001}, 422, "rows"),
    ({"namespace": "demo", "rows": [{}], "format": "excel"}, 422, "format"),
    ({"namespace": "demo", "rows": [{}], "extra": 1}, 422, "extra"),
    ({"rows": [{}]}, 422, "namespace"),
    ({"namespace": "nowhere", "rows": [{}]}, 422, "namespace"),
])
def test_the_api_refuses_a_malformed_request_whole(client, services, admin_key, body, status, field):
    admin, _ = admin_key
    response = client.post("/v1/imports", json=body, headers=admin)
    assert response.status_code == status
    error = response.get_json()["error"]
    assert error["code"] == "validation_failed" and error["requestId"] == response.headers["X-Request-Id"]
    assert field in json.dumps(error["details"]["fields"])
    with services.session() as session:
        assert session.query(Fulfilment).count() == 0


def test_the_api_needs_an_admin_key(client, admin_key):
    _, operator = admin_key
    body = {"namespace": "demo", "rows": [plain_row("cs_auth_1")]}
    assert client.post("/v1/imports", json=body).status_code == 401
    refused = client.post("/v1/imports", json=body, headers=operator)
    assert refused.status_code == 403 and refused.get_json()["error"]["code"] == "forbidden"
