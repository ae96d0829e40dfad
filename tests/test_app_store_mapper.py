"""mappers.app_store: decoded App Store notifications and transactions -> canonical purchases and reversals."""
import uuid

import pytest
from marshmallow import ValidationError

from mappers.app_store import account_token, classify, purchase
from mappers.canonical import Purchase, Reversal
from tests.support.apple_ca import notification, transaction

TOKEN = "7E3FB20B-4CDB-47CC-936D-99D65F608138"


@pytest.mark.parametrize("kind, subtype", [("ONE_TIME_CHARGE", None), ("SUBSCRIBED", "INITIAL_BUY"),
                                           ("SUBSCRIBED", "RESUBSCRIBE"), ("DID_RENEW", None)])
def test_grants(kind, subtype):
    tx = transaction(transaction_id="2000000000000007", original_transaction_id="2000000000000001",
                     product_id="com.demo.vip.monthly", quantity=1, type="Auto-Renewable Subscription",
                     app_account_token=TOKEN)
    note = notification(kind, subtype=subtype)
    action, result = classify(note, tx)
    assert action == "grant"
    assert result == Purchase(
        source="app_store", transaction_id="2000000000000007", player_id=None, environment="sandbox",
        lines=[{"store": "app_store", "product": "com.demo.vip.monthly", "quantity": 1}],
        payment_ref="2000000000000007",
        detail={"original_transaction_id": "2000000000000001", "app_account_token": TOKEN.lower(),
                "notification_type": kind, "subtype": subtype, "product_type": "Auto-Renewable Subscription",
                "price": 990, "currency": "USD", "notification_uuid": note["notificationUUID"],
                "player_hint": "no player is linked to this transaction (the receipts API links them)"},
        player_keys=(("transaction", "2000000000000007"), ("original_transaction", "2000000000000001"),
                     ("account_token", TOKEN.lower())),
        player_key="2000000000000001", price="0.99", currency="USD", price_check="app_store")  # 990 milli-units


def test_player_from_app_account_token():
    tx = transaction(environment="Production", quantity=3, app_account_token=TOKEN)
    _, result = classify(notification(environment="Production"), tx, "app_account_token")
    assert result.player_id == TOKEN.lower() and result.environment == "production"
    assert result.lines == [{"store": "app_store", "product": "com.demo.gems100", "quantity": 3}]
    assert "player_hint" not in result.detail
    _, missing = classify(notification(), transaction(), "app_account_token")
    assert missing.player_id is None and missing.detail["player_hint"] == "the transaction has no appAccountToken"
    _, bad = classify(notification(), transaction(app_account_token="player-1"), "app_account_token")
    assert bad.player_id is None and "not a UUID" in bad.detail["player_hint"]


def test_quantity_defaults_to_one():
    tx = transaction()
    del tx["quantity"]
    assert classify(notification(), tx)[1].lines[0]["quantity"] == 1


def test_receipts_api_purchase_names_its_player():
    result = purchase(transaction(transaction_id="42"), player_id="player-9")
    assert (result.transaction_id, result.player_id, result.payment_ref) == ("42", "player-9", "42")
    assert result.detail["notification_type"] is None and "player_hint" not in result.detail


@pytest.mark.parametrize("kind, reversal_kind", [("REFUND", "refund"), ("REVOKE", "refund"),
                                                 ("REFUND_REVERSED", "refund_reversed")])
def test_reversals(kind, reversal_kind):
    tx = transaction(transaction_id="2000000000000007", revocationDate=1_700_000_000_000, revocationReason=0)
    note = notification(kind)
    action, result = classify(note, tx)
    assert action == "reverse" and isinstance(result, Reversal)
    assert result.key == f"{reversal_kind}:2000000000000007:{note['notificationUUID']}"
    assert (result.source, result.ref, result.kind) == ("app_store", "2000000000000007", reversal_kind)
    assert result.amount is None and result.total is None  # the whole transaction
    assert result.detail["notification_type"] == kind and result.detail["revocation_date"] == 1_700_000_000_000


def test_refund_reversed_then_refunded_again_are_distinct_events():
    tx = transaction(transaction_id="77")
    keys = [classify(notification(kind), tx)[1].key for kind in ("REFUND", "REFUND_REVERSED", "REFUND")]
    assert len(set(keys)) == 3 and keys[0].startswith("refund:77:") and keys[1].startswith("refund_reversed:77:")
    same = notification("REFUND", notification_uuid=str(uuid.uuid4()))
    assert classify(same, tx)[1].key == classify(same, tx)[1].key  # a redelivery is the same event


def test_test_and_record_only():
    assert classify(notification("TEST")) == ("test", None)
    for kind in ("REFUND_DECLINED", "CONSUMPTION_REQUEST", "EXPIRED", "DID_CHANGE_RENEWAL_PREF",
                 "DID_CHANGE_RENEWAL_STATUS", "DID_FAIL_TO_RENEW", "PRICE_INCREASE", "SOMETHING_NEW"):
        assert classify(notification(kind), transaction()) == ("record", None)
        assert classify(notification(kind)) == ("record", None)


@pytest.mark.parametrize("note, tx", [
    (notification("ONE_TIME_CHARGE"), None),
    (notification("REFUND"), None),
    ({"notificationType": "ONE_TIME_CHARGE"}, transaction()),
    ([], transaction()),
    (notification(), {**transaction(), "transactionId": 5}),
    (notification(), {**transaction(), "productId": ""}),
    (notification(), {**transaction(), "quantity": 0}),
    (notification(), {**transaction(), "environment": "Xcode"}),
    (notification(), "not a transaction"),
])
def test_refused(note, tx):
    with pytest.raises(ValidationError):
        classify(note, tx)


def test_account_token():
    assert account_token(TOKEN) == TOKEN.lower() and account_token(TOKEN.replace("-", "")) == TOKEN.lower()
    assert account_token("nope") is None and account_token(None) is None


def test_prices_in_milli_units_become_decimals():
    from mappers.money import from_milli, from_minor
    assert from_milli(990, "USD") == ("0.99", "USD") and from_milli(5000, "eur") == ("5.00", "EUR")
    assert from_milli(4999, "USD") == ("4.999", "USD") and from_milli(None, "USD") == (None, None)
    assert from_milli(990, "dollars") == (None, None)
    assert from_minor(499, "usd") == ("4.99", "USD") and from_minor(500, "jpy") == ("500", "JPY")
    assert from_minor(1500, "kwd") == ("1.500", "KWD") and from_minor(True, "usd") == (None, None)
