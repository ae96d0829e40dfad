"""App Store orders that were stuck or misread (issue 13): an order refunded before its player was known,
upgrades charged at once, prorated refunds, what a refund says, duplicates, refused receipts in the log."""
from __future__ import annotations

import logging
import uuid

import pytest
from sqlalchemy import select

from middleware.ledger import repository as repo
from middleware.ledger import states
from middleware.ledger.models import HistoryEntry
from middleware.orders.reconciler import reconcile_now

from tests.support.app_store import Apple, apple, make_app, write_catalog  # noqa: F401
from tests.support.apple_ca import (BUNDLE_ID, default_chain, notification, now_ms, sign_jws, signed_notification,
                       tamper_signature, transaction)
from tests.support.orders_flow import drain
from tests.support.ops_ledger import key
from tests.support.stripe_events import balances

VIP, VIP_PLUS = "com.demo.vip.monthly", "com.demo.vipplus.monthly"


def tx(txid: str, **kw) -> dict:
    return transaction(transaction_id=txid, **kw)


def ledger_order(services, txid: str) -> dict | None:
    with services.session() as session:
        f = repo.find(session, "demo", "app_store", txid)
        if f is None:
            return None
        history = [h.detail for h in session.scalars(select(HistoryEntry).where(HistoryEntry.fulfilment_id == f.id))]
        return {"id": f.id, "state": f.state, "player": f.player_id, "reason": f.reason, "attention": f.attention,
                "items": sorted((i.target, i.amount, i.revoked_amount, i.state) for i in f.items), "history": history}


def act(client, fulfilment_id: str, action: str, headers: dict, **body):
    return client.post(f"/v1/fulfilments/{fulfilment_id}/actions/{action}",
                       json={"reason": "support ticket 1", **body}, headers=headers)


def refund(txid: str, **kw) -> dict:
    return tx(txid, revocationDate=1_700_000_000_000, revocationReason=0, **kw)


# ---------------------------------------------------------------- 6: never granted to anyone
def test_an_unresolved_order_refunded_is_revoked_without_kraty(apple, redis, emulator):
    t = tx("4100000000000001")
    apple.notify(tx=t)
    drain(redis)
    assert ledger_order(apple.services, t["transactionId"])["state"] == states.FULFILL_FAILED
    assert apple.notify("REFUND", tx=refund(t["transactionId"], revocationType="REFUND_FULL")).status_code == 200
    drain(redis)
    o = ledger_order(apple.services, t["transactionId"])
    assert o["state"] == states.REVOKED and o["player"] is None, o
    assert {item[3] for item in o["items"]} == {states.ITEM_SKIPPED}
    assert emulator.ledger() == []
    operator = key(apple.services, "operator")
    refused = act(apple.client, o["id"], "attach-player", operator, playerId="player-1")
    assert refused.status_code == 409, refused.get_json()
    assert "refunded or revoked before any player was known" in refused.get_json()["error"]["message"]
    assert ledger_order(apple.services, t["transactionId"])["state"] == states.REVOKED
    assert emulator.ledger() == []


def test_an_operator_revokes_an_unresolved_order_without_kraty(apple, redis, emulator):
    t = tx("4100000000000002")
    apple.notify(tx=t)
    drain(redis)
    o = ledger_order(apple.services, t["transactionId"])
    response = act(apple.client, o["id"], "revoke", key(apple.services, "operator"))
    assert response.status_code == 200, response.get_json()
    assert ledger_order(apple.services, t["transactionId"])["state"] == states.REVOKED
    drain(redis)
    assert emulator.ledger() == []


def test_an_order_stranded_in_revoking_without_a_player_recovers(apple, redis, emulator):
    """What the old code left behind: REVOKING, no player, rows PENDING ("maybe granted"), a free lease."""
    t = tx("4100000000000003")
    apple.notify(tx=t)
    drain(redis)
    with apple.services.session() as session:
        f = repo.find(session, "demo", "app_store", t["transactionId"])
        repo.set_state(f, states.REVOKING, "app_store", {"action": "revoke"}, reason="app_store refund of None")
        session.commit()
    assert reconcile_now(apple.services, stale_seconds=0)["enqueued"] == 1
    drain(redis)
    o = ledger_order(apple.services, t["transactionId"])
    assert o["state"] == states.REVOKED and {item[3] for item in o["items"]} == {states.ITEM_SKIPPED}, o
    assert emulator.ledger() == []


# ---------------------------------------------------------------- 10: upgrades are charged at once
def subscription(txid: str, product: str, original: str | None = None) -> dict:
    """A period of an auto-renewable subscription of the demo's group, as Apple's sandbox signs it."""
    now = now_ms()
    return tx(txid, original_transaction_id=original, product_id=product, type="Auto-Renewable Subscription",
              subscriptionGroupIdentifier="21514251", webOrderLineItemId=f"9{txid[1:]}", purchaseDate=now,
              expiresDate=now + 30 * 24 * 3600 * 1000, transactionReason="PURCHASE", price=4990 if original else 990)


def upgrade_sequence(first: str, upgraded: str) -> tuple[dict, dict]:
    """A VIP subscription, then its upgrade to VIP Plus: a new transactionId of the same original."""
    return subscription(first, VIP), subscription(upgraded, VIP_PLUS, original=first)


def upgrade_notification(up: dict) -> str:
    """DID_CHANGE_RENEWAL_PREF / UPGRADE as Apple sends it: the new transaction, the renewal info, status 1."""
    renewal = {"originalTransactionId": up["originalTransactionId"], "autoRenewProductId": up["productId"],
               "productId": up["productId"], "autoRenewStatus": 1, "environment": "Sandbox",
               "signedDate": now_ms(), "recentSubscriptionStartDate": up["purchaseDate"],
               "renewalDate": up["expiresDate"]}
    data = {"bundleId": BUNDLE_ID, "bundleVersion": "1.0", "environment": "Sandbox", "status": 1,
            "signedTransactionInfo": sign_jws(up), "signedRenewalInfo": sign_jws(renewal)}
    return sign_jws(notification("DID_CHANGE_RENEWAL_PREF", subtype="UPGRADE", data=data))


def test_an_upgrade_notification_grants_the_new_transaction_once(apple, redis, emulator):
    sub, up = upgrade_sequence("4200000000000001", "4200000000000002")
    assert apple.receipt("player-1", sub, wait=5).get_json()["state"] == states.FULFILLED
    assert apple.notify("SUBSCRIBED", tx=sub, subtype="INITIAL_BUY").status_code == 200
    notified = apple.client.post("/webhooks/app-store", json={"signedPayload": upgrade_notification(up)})
    assert notified.status_code == 200 and notified.get_json()["outcome"] == "pending"
    drain(redis)
    assert ledger_order(apple.services, up["transactionId"])["state"] == states.FULFILLED
    again = apple.receipt("player-1", up, wait=5).get_json()  # the game posts the upgrade's transaction too
    assert again["state"] == states.FULFILLED
    drain(redis)
    assert balances(emulator) == ({"gems": 300 + 700}, {"vip_pass": 2})
    assert len(emulator.ledger()) == 4  # two rows for each of the two transactions


def test_an_upgrade_receipt_first_then_its_notification_grants_once(apple, redis, emulator):
    sub, up = upgrade_sequence("4200000000000003", "4200000000000004")
    apple.receipt("player-1", sub, wait=5)
    assert apple.receipt("player-1", up, wait=5).get_json()["state"] == states.FULFILLED
    apple.client.post("/webhooks/app-store", json={"signedPayload": upgrade_notification(up)})
    drain(redis)
    assert balances(emulator) == ({"gems": 1000}, {"vip_pass": 2})
    assert len(emulator.ledger()) == 4


def test_a_downgrade_is_recorded_only(apple, redis, emulator):
    sub = subscription("4200000000000005", VIP)
    apple.receipt("player-1", sub, wait=5)
    down = sub  # a downgrade's notification carries the current transaction: it changes the next renewal only
    answer = apple.notify("DID_CHANGE_RENEWAL_PREF", tx=down, subtype="DOWNGRADE")
    assert answer.status_code == 200 and answer.get_json()["outcome"] == "ignored"
    drain(redis)
    assert balances(emulator) == ({"gems": 300}, {"vip_pass": 1})


# ---------------------------------------------------------------- 11, 13: what is said and answered
def test_a_refund_says_what_is_known(apple, redis, emulator):
    t = tx("4300000000000001", currency="AUD")
    apple.receipt("player-1", t, wait=5)
    apple.notify("REFUND", tx=refund(t["transactionId"], currency="AUD", revocationType="REFUND_FULL"))
    drain(redis)
    o = ledger_order(apple.services, t["transactionId"])
    assert o["state"] == states.REVOKED
    said = [str(detail.get("reason")) for detail in o["history"] if detail and detail.get("action") == "revoke"]
    assert said == ["app_store refund of transaction 4300000000000001 (REFUND_FULL, revocationReason 0)"], said
    assert not any("of None" in str(detail) for detail in o["history"]), o["history"]


def test_a_duplicate_notification_answers_what_was_recorded(apple, redis, emulator):
    signed = signed_notification("ONE_TIME_CHARGE", tx=tx("4300000000000002"), notification_uuid=str(uuid.uuid4()))
    apple.receipt("player-1", tx("4300000000000002"), wait=5)
    assert apple.client.post("/webhooks/app-store", json={"signedPayload": signed}).get_json()["outcome"] == "pending"
    drain(redis)
    again = apple.client.post("/webhooks/app-store", json={"signedPayload": signed}).get_json()
    assert again["duplicate"] is True and again["outcome"] == "processed", again
    assert again["state"] == states.FULFILLED and again["fulfilmentId"]
    test = signed_notification("TEST", notification_uuid=str(uuid.uuid4()))
    apple.client.post("/webhooks/app-store", json={"signedPayload": test})
    assert apple.client.post("/webhooks/app-store", json={"signedPayload": test}).get_json()["outcome"] == "ignored"


# ---------------------------------------------------------------- 14: prorated refunds
@pytest.fixture
def proportional(make_app, catalog_path, tmp_path):
    app = make_app(catalog_path=write_catalog(catalog_path, tmp_path, partial_refunds="proportional"),
                   apple_root_sha256=frozenset({default_chain().root.sha256.upper()}))
    return Apple(app)


def bought_then_refunded(a: Apple, redis, txid: str, quantity: int, **revocation) -> dict:
    """A receipt grants ``quantity`` × 100 gems to player-1; then Apple's refund (or REVOKE) notification."""
    a.receipt("player-1", tx(txid, quantity=quantity), wait=5)
    kind = "REVOKE" if revocation.get("revocationType") == "FAMILY_REVOKE" else "REFUND"
    a.notify(kind, tx=refund(txid, quantity=quantity, **revocation))
    drain(redis)
    return ledger_order(a.services, txid)


def test_a_prorated_refund_is_flagged_by_default(apple, redis, emulator):
    o = bought_then_refunded(apple, redis, "4400000000000001", 3, revocationType="REFUND_PRORATED",
                             revocationPercentage=50000)
    assert o["state"] == states.FULFILLED and "50% refunded" in o["attention"], o
    assert balances(emulator)[0] == {"gems": 300}


@pytest.mark.parametrize("revocation, left", [
    ({"revocationType": "REFUND_PRORATED", "revocationPercentage": 50000}, 150),
    ({"revocationType": "REFUND_PRORATED", "revocationPercentage": 33333}, 201),  # 99.999 taken: rounded down
    ({"revocationType": "REFUND_FULL"}, 0),
    ({"revocationType": "FAMILY_REVOKE"}, 0),
])
def test_prorated_refunds_take_back_the_refunded_share(proportional, redis, emulator, revocation, left):
    o = bought_then_refunded(proportional, redis, "4400000000000101", 3, **revocation)
    assert balances(emulator)[0] == {"gems": left}, o
    assert o["state"] == (states.FULFILLED if left else states.REVOKED)


def test_a_prorated_refund_then_a_full_one_takes_the_rest(proportional, redis, emulator):
    bought_then_refunded(proportional, redis, "4400000000000201", 2, revocationType="REFUND_PRORATED",
                         revocationPercentage=25000)
    assert balances(emulator)[0] == {"gems": 150}
    proportional.notify("REFUND", tx=refund("4400000000000201", quantity=2, revocationType="REFUND_FULL"))
    drain(redis)
    assert balances(emulator)[0] == {"gems": 0}
    assert ledger_order(proportional.services, "4400000000000201")["state"] == states.REVOKED


def test_a_prorated_transaction_posted_as_a_receipt_grants_only_what_was_kept(proportional, redis, emulator):
    t = refund("4400000000000301", quantity=4, revocationType="REFUND_PRORATED", revocationPercentage=75000)
    body = proportional.receipt("player-1", t, wait=5).get_json()
    drain(redis)
    assert balances(emulator)[0] == {"gems": 100}, body


# ---------------------------------------------------------------- 12: refusals in the log
def test_a_refused_receipt_is_logged_like_a_refused_notification(apple, caplog):
    signed = tamper_signature(sign_jws(tx("4500000000000001")))
    with caplog.at_level(logging.INFO, logger="middleware.api.app_store_webhook"):
        response = apple.receipt("player-1", {}, signed=signed)
        assert response.status_code == 422 and response.get_json()["error"]["code"] == "receipt_invalid"
        notified = apple.client.post("/webhooks/app-store",
                                     json={"signedPayload": tamper_signature(signed_notification(tx=tx("45"
                                                                                                       "00000000000002")))})
        assert notified.status_code == 401
    lines = [r for r in caplog.records if "refused" in r.getMessage()]
    assert [line.getMessage().split(":")[0] for line in lines] == ["app store receipt refused",
                                                                   "app store notification refused"]
    receipt, notification = (line.getMessage() for line in lines)
    assert "422 receipt_invalid" in receipt and "401 invalid_signature" in notification
    assert "cause:" in receipt and "verification status" in receipt
    assert signed.split(".")[1] not in receipt and signed.split(".")[2] not in receipt
