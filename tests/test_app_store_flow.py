"""App Store end to end: notifications and receipts, verified by Apple's library, granted once."""
from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from tests.support.app_store import RECEIPTS, Apple, apple, concurrently, make_app, write_catalog  # noqa: F401
from tests.support.apple_ca import default_chain, sign_jws, tamper_signature, transaction
from tests.support.orders_flow import drain
from tests.support.stripe_events import balances


def order(apple_: Apple, txid: str):
    from tests.support.stripe_events import order as find
    o = find(apple_.services, txid)
    return None if o is None else o


def app_order(services, txid):
    from middleware.ledger import repository as repo
    with services.session() as session:
        f = repo.find(session, "demo", "app_store", txid)
        return None if f is None else {"state": f.state, "player": f.player_id, "reason": f.reason,
                                       "environment": f.environment}


def tx(txid: str = "2000000000000001", **kw) -> dict:
    return transaction(transaction_id=txid, **kw)


def test_notification_then_receipt_grants_once(apple, redis, emulator):
    t = tx()
    assert apple.notify(tx=t).status_code == 200
    drain(redis)
    held = app_order(apple.services, t["transactionId"])
    assert held["state"] == "FULFILL_FAILED" and held["reason"].startswith("player_unresolved"), held
    response = apple.receipt("player-1", t, wait=5)
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["state"] == "FULFILLED" and response.get_json()["playerId"] == "player-1"
    drain(redis)
    assert balances(emulator)[0] == {"gems": 100}
    assert len(emulator.ledger()) == 1


def test_receipt_then_notification_grants_once(apple, redis, emulator):
    t = tx("2000000000000002", quantity=3)
    body = apple.receipt("player-1", t, wait=5).get_json()
    assert body["state"] == "FULFILLED" and body["environment"] == "sandbox"
    assert apple.notify(tx=t).status_code == 200
    drain(redis)
    assert balances(emulator)[0] == {"gems": 300}
    again = apple.receipt("player-1", t)
    assert again.status_code == 200 and again.get_json()["fulfilmentId"] == body["fulfilmentId"]
    assert len(emulator.ledger()) == 1


def test_a_receipt_for_another_player_is_409_and_grants_nothing(apple, redis, emulator):
    t = tx("2000000000000003")
    assert apple.receipt("player-1", t, wait=5).status_code == 200
    response = apple.receipt("player-2", t)
    assert response.status_code == 409 and response.get_json()["error"]["code"] == "receipt_already_redeemed"
    assert balances(emulator, "player-2") == ({}, {})
    assert len(emulator.ledger()) == 1


def test_twenty_concurrent_receipts_grant_once(apple, redis, emulator):
    t = tx("2000000000000004")
    signed = sign_jws(t)
    clients = [apple.app.test_client() for _ in range(20)]
    key = apple.key

    def post(i=iter(range(20))):
        c = clients[next(i)]
        return c.post(RECEIPTS, json={"playerId": "player-1", "signedTransaction": signed},
                      headers={"Authorization": f"Bearer {key}"})

    answers = concurrently(20, post)
    assert {r.status_code for r in answers} <= {200, 202}, [r.get_json() for r in answers]
    assert len({r.get_json()["fulfilmentId"] for r in answers}) == 1
    drain(redis)
    assert balances(emulator)[0] == {"gems": 100}
    assert len(emulator.ledger()) == 1


def test_renewals_reach_the_linked_player(apple, redis, emulator):
    first = tx("3000000000000001", product_id="com.demo.vip.monthly", type="Auto-Renewable Subscription")
    apple.receipt("player-1", first, wait=5)
    renewal = tx("3000000000000002", original_transaction_id="3000000000000001", product_id="com.demo.vip.monthly",
                 type="Auto-Renewable Subscription")
    assert apple.notify("DID_RENEW", tx=renewal).status_code == 200
    drain(redis)
    assert app_order(apple.services, "3000000000000002")["player"] == "player-1"
    assert balances(emulator) == ({"gems": 600}, {"vip_pass": 2})


def test_a_held_renewal_is_released_by_the_receipt(apple, redis, emulator):
    renewal = tx("3100000000000002", original_transaction_id="3100000000000001", product_id="com.demo.gems100")
    apple.notify("DID_RENEW", tx=renewal)
    drain(redis)
    assert app_order(apple.services, "3100000000000002")["state"] == "FULFILL_FAILED"
    apple.receipt("player-5", tx("3100000000000001"), wait=5)
    drain(redis)
    assert app_order(apple.services, "3100000000000002")["state"] == "FULFILLED"
    assert balances(emulator, "player-5")[0] == {"gems": 200}


def test_refund_then_refund_reversed_then_refund_again(apple, redis, emulator):
    t = tx("2000000000000005")
    apple.receipt("player-1", t, wait=5)
    for kind, state, gems in (("REFUND", "REVOKED", 0), ("REFUND_REVERSED", "FULFILLED", 100),
                              ("REFUND", "REVOKED", 0)):
        assert apple.notify(kind, tx={**t, "revocationDate": 1}).status_code == 200
        drain(redis)
        assert app_order(apple.services, t["transactionId"])["state"] == state, kind
        assert balances(emulator)[0] == {"gems": gems}, kind
    keys = [e["idempotencyKey"] for e in emulator.ledger()]
    assert len(keys) == len(set(keys)) == 4  # grant, take back, grant again (new key), take back again


def test_a_refund_before_anything_else_leaves_the_order_never_granted(apple, redis, emulator):
    t = tx("2000000000000006")
    apple.notify("REFUND", tx=t)
    drain(redis)
    body = apple.receipt("player-1", t, wait=5).get_json()
    assert body["state"] == "REVOKED"
    assert emulator.ledger() == []


def test_a_revoked_transaction_posted_as_a_receipt_is_never_granted(apple, redis, emulator):
    t = tx("2000000000000007", revocationDate=1700000000000, revocationReason=0)
    body = apple.receipt("player-1", t, wait=5).get_json()
    assert body["state"] == "REVOKED"
    assert emulator.ledger() == []


def test_test_notifications_and_other_types_change_nothing(apple, redis, emulator, services):
    test = apple.notify("TEST")
    assert test.status_code == 200 and test.get_json()["outcome"] == "ignored"
    other = apple.notify("DID_CHANGE_RENEWAL_PREF", tx=tx("2000000000000008"))
    assert other.status_code == 200 and other.get_json()["outcome"] == "ignored"
    # a refund request is acted on (consumption information, tests/test_app_store_consumption.py): never a grant
    asked = apple.notify("CONSUMPTION_REQUEST", tx=tx("2000000000000008"))
    assert asked.status_code == 200 and asked.get_json()["outcome"] == "pending"
    drain(redis)
    assert app_order(apple.services, "2000000000000008") is None
    assert emulator.ledger() == []


def test_duplicate_notifications_are_200_and_change_nothing(apple, redis, emulator):
    from tests.support.apple_ca import signed_notification
    signed = signed_notification("ONE_TIME_CHARGE", tx=tx("2000000000000009"), notification_uuid=str(uuid.uuid4()))
    first = apple.client.post("/webhooks/app-store", json={"signedPayload": signed})
    again = apple.client.post("/webhooks/app-store", json={"signedPayload": signed})
    assert first.status_code == again.status_code == 200
    assert again.get_json()["duplicate"] is True


def test_app_account_token_players(make_app, catalog_path, tmp_path, redis, emulator):
    app = make_app(catalog_path=write_catalog(catalog_path, tmp_path, player_ids="app_account_token"),
                   apple_root_sha256=frozenset({default_chain().root.sha256}))
    a = Apple(app)
    token = str(uuid.uuid4())
    assert a.notify(tx=tx("2000000000000010", app_account_token=token.upper())).status_code == 200
    drain(redis)
    assert app_order(a.services, "2000000000000010")["player"] == token
    assert balances(emulator, token)[0] == {"gems": 100}


# ---------------------------------------------------------------- bad input
def test_notification_bad_input(apple, services):
    c = apple.client
    assert c.post("/webhooks/app-store", data="x", content_type="text/plain").status_code == 415
    assert c.post("/webhooks/app-store", data="{nope", content_type="application/json").status_code == 400
    assert c.post("/webhooks/app-store", json={"signedPayload": 5}).status_code == 400
    assert c.post("/webhooks/app-store", json={"signedPayload": "a.b"}).status_code == 400
    from tests.support.apple_ca import signed_notification
    tampered = tamper_signature(signed_notification(tx=tx("2000000000000011")))
    response = c.post("/webhooks/app-store", json={"signedPayload": tampered})
    assert response.status_code == 401 and response.get_json()["error"]["code"] == "invalid_signature"
    other_bundle = c.post("/webhooks/app-store", json={"signedPayload": signed_notification(bundle_id="com.x")})
    assert other_bundle.status_code == 422
    from tests.support.stripe_events import inbound
    assert inbound(services, source="app_store") == []


def test_sandbox_needs_a_game_that_allows_it(make_app, catalog_path, tmp_path):
    app = make_app(catalog_path=write_catalog(catalog_path, tmp_path, sandbox=False),
                   apple_root_sha256=frozenset({default_chain().root.sha256}))
    response = Apple(app).notify(tx=tx("2000000000000012"))
    assert response.status_code == 422 and response.get_json()["error"]["code"] == "not_accepted"


@pytest.mark.parametrize("body, status", [
    ({}, 422), ({"playerId": "p"}, 422), ({"playerId": "has space", "signedTransaction": "a.b.c"}, 422),
    ({"playerId": "p", "signedTransaction": "a.b.c", "extra": 1}, 422),
    ({"playerId": "p", "signedTransaction": "not-a-jws"}, 400),
])
def test_receipt_bad_bodies(apple, body, status):
    response = apple.client.post(RECEIPTS, json=body, headers={"Authorization": f"Bearer {apple.key}"})
    assert response.status_code == status, response.get_json()
    assert set(response.get_json()) == {"error"}


def test_receipt_auth(apple):
    t = tx("2000000000000013")
    assert apple.client.post(RECEIPTS, json={}).status_code == 401
    assert apple.receipt("player-1", t, key="kb_wrong").status_code == 401
    viewer = apple.make_key("support", "viewer")
    assert apple.receipt("player-1", t, key=viewer).status_code == 403
    elsewhere = apple.make_key("other-game", "receipts", ["another_game"])
    assert apple.receipt("player-1", t, key=elsewhere).status_code == 403
    assert apple.receipt("player-1", t, wait=9).status_code == 422
    tampered = apple.receipt("player-1", t, signed=tamper_signature(sign_jws(t)))
    assert tampered.status_code == 422 and tampered.get_json()["error"]["code"] == "receipt_invalid"


def test_ocsp_unreachable_is_503_so_apple_retries(make_app, catalog_path, tmp_path, services):
    from tests.support.apple_ca import closed_port_url, make_chain, signed_notification
    chain = make_chain(ocsp_url=closed_port_url(), label=" (online)")
    chain.write_root(tmp_path, "apple-root.cer")
    text = Path(catalog_path).read_text().replace(
        "\n# ---------------------------------------------------------------- currencies (COINS)",
        '\n[games.demo.app_store]\nbundle_id = "com.demo.game"\nallow_production = false\n'
        'root_certificates = ["apple-root.cer"]\nonline_checks = true\n'
        "\n# ---------------------------------------------------------------- currencies (COINS)", 1)
    (tmp_path / "online.toml").write_text(text)
    app = make_app(catalog_path=str(tmp_path / "online.toml"))
    response = app.test_client().post("/webhooks/app-store", json={"signedPayload": signed_notification(chain=chain)})
    assert response.status_code == 503 and response.get_json()["error"]["code"] == "verification_unavailable"
    from tests.support.stripe_events import inbound
    assert inbound(services, source="app_store") == []


def test_production_without_a_pinned_root_refuses_to_start(settings_overrides, catalog_path, tmp_path):
    from app import create_app
    from config.catalog import CatalogError
    path = write_catalog(catalog_path, tmp_path)  # production allowed, the root is the tests' own
    with pytest.raises(CatalogError) as caught:
        create_app({**settings_overrides, "catalog_path": path})  # KB_APPLE_ROOT_SHA256: Apple's G3 only
    message = str(caught.value)
    assert "games.demo.app_store" in message and "63343ABFB89A6A03" in message.upper()
