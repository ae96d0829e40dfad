"""mappers.google_play (and mappers.google_play_api): push envelopes, developer notifications, the
Publisher API's purchase resources, and the canonical purchases and reversals made from them."""
import base64
import json

import pytest
from marshmallow import ValidationError

from mappers import google_play as gp
from mappers.canonical import Purchase, Reversal

TOKEN = "opaque-token-" + "x" * 140
ORDER = "GPA.3301-2345-6789-01234"


def b64(value) -> str:
    raw = value if isinstance(value, bytes) else json.dumps(value).encode()
    return base64.b64encode(raw).decode()


def envelope(data="e30=", **message) -> dict:
    msg = {"data": data, "messageId": "2070443601311540", "message_id": "2070443601311540",
           "publishTime": "2021-02-26T19:13:55.749Z", "publish_time": "2021-02-26T19:13:55.749Z",
           "attributes": {"k": "v"}}
    msg.update(message)
    return {"message": {k: v for k, v in msg.items() if v is not None},
            "subscription": "projects/demo-project/subscriptions/play-rtdn"}


def developer(**kind) -> dict:
    return {"version": "1.0", "packageName": "com.demo.game", "eventTimeMillis": "1503349566168", **kind}


# ---------------------------------------------------------------- the push envelope
def test_push_envelope():
    env = gp.push_envelope(envelope())
    assert env == gp.Envelope("2070443601311540", "2021-02-26T19:13:55.749Z", "e30=", {"k": "v"},
                              "projects/demo-project/subscriptions/play-rtdn")


def test_push_envelope_snake_case_only_and_no_attributes():
    env = gp.push_envelope(envelope(messageId=None, publishTime=None, attributes=None))
    assert env.message_id == "2070443601311540" and env.publish_time.startswith("2021") and env.attributes == {}


@pytest.mark.parametrize("body", [
    None, [], "x", {}, {"message": {}}, {"subscription": "s"}, {**envelope(), "message": "m"},
    {**envelope(), "subscription": ""},
    envelope(messageId=None, message_id=None),
    envelope(messageId="has space", message_id=None),
    envelope(messageId=5, message_id=None),
    envelope(publishTime=None, publish_time=None),
    envelope(data=None),
    envelope(data=5),
    envelope(attributes={"k": 1}),
    envelope(attributes=["k"]),
])
def test_not_a_push_envelope(body):
    with pytest.raises(ValidationError):
        gp.push_envelope(body)


# ---------------------------------------------------------------- the developer notification
def test_one_time_product_notification():
    n = gp.notification(b64(developer(oneTimeProductNotification={
        "version": "1.0", "notificationType": 1, "purchaseToken": TOKEN, "sku": "gems_100"})))
    assert (n.kind, n.notification_type, n.purchase_token, n.sku) == ("one_time", 1, TOKEN, "gems_100")
    assert (n.version, n.package_name, n.event_time_millis) == ("1.0", "com.demo.game", "1503349566168")
    assert n.raw["oneTimeProductNotification"]["sku"] == "gems_100"


def test_subscription_notification():
    n = gp.notification(b64(developer(subscriptionNotification={
        "version": "1.0", "notificationType": 4, "purchaseToken": TOKEN, "subscriptionId": "vip_monthly"})))
    assert (n.kind, n.notification_type, n.subscription_id) == ("subscription", 4, "vip_monthly")
    assert gp.SUBSCRIPTION_TYPES[n.notification_type] == "PURCHASED" and 4 in gp.SUBSCRIPTION_NEW_ORDER
    n = gp.notification(b64(developer(subscriptionNotification={"notificationType": 2, "purchaseToken": TOKEN})))
    assert n.subscription_id is None and n.notification_type == 2


def test_voided_purchase_notification():
    n = gp.notification(b64(developer(voidedPurchaseNotification={
        "purchaseToken": TOKEN, "orderId": ORDER, "productType": 2, "refundType": 1})))
    assert (n.kind, n.purchase_token, n.order_id, n.product_type, n.refund_type) == ("voided", TOKEN, ORDER, 2, 1)
    assert n.notification_type is None


def test_test_notification():
    n = gp.notification(b64(developer(testNotification={"version": "1.0"})))
    assert n.kind == "test" and n.purchase_token is None


def test_unknown_kinds_and_an_int_event_time():
    n = gp.notification(b64({**developer(futureNotification={"x": 1}), "eventTimeMillis": 1503349566168}))
    assert n.kind == "unknown" and n.event_time_millis == "1503349566168"
    assert gp.notification(b64(developer())).kind == "unknown"


@pytest.mark.parametrize("data", ["not base64!", "e30", "e3=0", 5, None])
def test_bad_base64(data):
    with pytest.raises(gp.NotificationError) as info:
        gp.notification(data)
    assert info.value.reason == "bad_base64"


@pytest.mark.parametrize("raw", [b"not json", b"\xff\xfe", b"", b"{"])
def test_non_json_data(raw):
    with pytest.raises(gp.NotificationError) as info:
        gp.notification(b64(raw))
    assert info.value.reason == "not_json"


@pytest.mark.parametrize("payload", [
    [], "x", 5, {},
    {"packageName": "com.demo.game", "eventTimeMillis": "1"},
    developer(eventTimeMillis="yesterday"),
    developer(eventTimeMillis=-1),
    developer(packageName=""),
    developer(oneTimeProductNotification={"notificationType": 1, "purchaseToken": TOKEN}),
    developer(oneTimeProductNotification={"notificationType": "1", "purchaseToken": TOKEN, "sku": "s"}),
    developer(oneTimeProductNotification="x"),
    developer(subscriptionNotification={"notificationType": 4}),
    developer(voidedPurchaseNotification={"purchaseToken": TOKEN, "productType": 3, "refundType": 1}),
    developer(voidedPurchaseNotification={"purchaseToken": TOKEN, "productType": 2, "refundType": 9}),
    developer(testNotification={}, oneTimeProductNotification={"notificationType": 1, "purchaseToken": TOKEN,
                                                                "sku": "s"}),
])
def test_not_a_notification(payload):
    with pytest.raises(gp.NotificationError) as info:
        gp.notification(b64(payload))
    assert info.value.reason == "not_a_notification" and isinstance(info.value, ValueError)


# ---------------------------------------------------------------- the Publisher API's answers
def product_v2(state="PURCHASED", **extra) -> dict:
    return {"kind": "androidpublisher#productPurchaseV2", "orderId": ORDER,
            "productLineItem": [{"productId": "gems_100", "productOfferDetails": {
                "quantity": 3, "refundableQuantity": 3, "consumptionState": "CONSUMPTION_STATE_YET_TO_BE_CONSUMED"}}],
            "purchaseStateContext": {"purchaseState": state}, "obfuscatedExternalAccountId": "player-1",
            "acknowledgementState": "ACKNOWLEDGEMENT_STATE_PENDING", "regionCode": "US", **extra}


def test_product_purchase_v2():
    state = gp.product_purchase_v2(product_v2())
    assert state == gp.ProductState("PURCHASED", [{"store": "google_play", "product": "gems_100", "quantity": 3}],
                                    ORDER, False, "player-1", acknowledged=False, consumed=False)
    assert state.quantity == 3


def test_product_purchase_v2_test_pending_cancelled_and_defaults():
    state = gp.product_purchase_v2(product_v2("PENDING", testPurchaseContext={"fopType": "TEST"},
                                              productLineItem=[{"productId": "sword"}, {"productId": "gems_100",
                                               "productOfferDetails": {"consumptionState": "CONSUMPTION_STATE_CONSUMED"}}],
                                              orderId=None, obfuscatedExternalAccountId=None,
                                              acknowledgementState="ACKNOWLEDGEMENT_STATE_ACKNOWLEDGED"))
    assert state.state == "PENDING" and state.test is True and state.order_id is None
    assert [line["quantity"] for line in state.lines] == [1, 1] and state.quantity == 2
    assert state.acknowledged is True and state.consumed is None and state.obfuscated_account_id is None
    assert gp.product_purchase_v2(product_v2("CANCELLED")).state == "CANCELLED"


@pytest.mark.parametrize("payload", [
    None, [], product_v2("PURCHASE_STATE_UNSPECIFIED"), product_v2(purchaseStateContext={}),
    product_v2(purchaseStateContext=None), product_v2(productLineItem=[]), product_v2(productLineItem=[{}]),
    product_v2(productLineItem=[{"productId": "x", "productOfferDetails": {"quantity": 0}}]),
    product_v2(productLineItem=[{"productId": "x", "productOfferDetails": {"quantity": "2"}}]),
])
def test_product_purchase_v2_unusable(payload):
    with pytest.raises(ValidationError):
        gp.product_purchase_v2(payload)


def product_v1(**extra) -> dict:
    return {"kind": "androidpublisher#productPurchase", "purchaseTimeMillis": "1503349566168", "purchaseState": 0,
            "consumptionState": 0, "orderId": ORDER, "acknowledgementState": 1, "regionCode": "US", **extra}


@pytest.mark.parametrize("value, state", [(0, "PURCHASED"), (1, "CANCELLED"), (2, "PENDING")])
def test_product_purchase_v1_states(value, state):
    assert gp.product_purchase_v1(product_v1(purchaseState=value), "gems_100").state == state


def test_product_purchase_v1():
    state = gp.product_purchase_v1(product_v1(), "gems_100")
    assert state == gp.ProductState("PURCHASED", [{"store": "google_play", "product": "gems_100", "quantity": 1}],
                                    ORDER, False, None, acknowledged=True, consumed=False)
    state = gp.product_purchase_v1(product_v1(purchaseType=0, quantity=4, productId="gems_500", consumptionState=1,
                                              obfuscatedExternalAccountId="p-9"), "gems_100")
    assert state.test is True and state.lines == [{"store": "google_play", "product": "gems_500", "quantity": 4}]
    assert state.consumed is True and state.obfuscated_account_id == "p-9"
    assert gp.product_purchase_v1(product_v1(purchaseType=1), "s").test is False  # promo code


@pytest.mark.parametrize("payload", [product_v1(purchaseState=3), product_v1(purchaseState=None),
                                     product_v1(quantity=0), {"orderId": ORDER}, "x"])
def test_product_purchase_v1_unusable(payload):
    with pytest.raises(ValidationError):
        gp.product_purchase_v1(payload, "gems_100")


def subscription(state="SUBSCRIPTION_STATE_ACTIVE", **extra) -> dict:
    return {"kind": "androidpublisher#subscriptionPurchaseV2", "subscriptionState": state,
            "startTime": "2025-01-01T00:00:00Z", "latestOrderId": "GPA.old",
            "lineItems": [{"productId": "vip_monthly", "expiryTime": "2025-02-01T00:00:00Z",
                           "latestSuccessfulOrderId": f"{ORDER}..1", "autoRenewingPlan": {"autoRenewEnabled": True}}],
            "acknowledgementState": "ACKNOWLEDGEMENT_STATE_ACKNOWLEDGED",
            "externalAccountIdentifiers": {"obfuscatedExternalAccountId": "player-1"}, **extra}


def test_subscription_v2():
    state = gp.subscription_v2(subscription())
    assert state == gp.SubscriptionState("ACTIVE", [{"store": "google_play", "product": "vip_monthly", "quantity": 1}],
                                         f"{ORDER}..1", False, "player-1", acknowledged=True)
    assert state.paid


def test_subscription_v2_fallbacks_and_states():
    state = gp.subscription_v2(subscription(
        "SUBSCRIPTION_STATE_IN_GRACE_PERIOD", testPurchase={}, externalAccountIdentifiers=None,
        linkedPurchaseToken="old-token", lineItems=[{"productId": "vip_monthly"}]))
    assert state.latest_order_id == "GPA.old" and state.test and state.obfuscated_account_id is None
    assert state.state == "IN_GRACE_PERIOD" and state.paid and state.linked_purchase_token == "old-token"
    pending = gp.subscription_v2(subscription("SUBSCRIPTION_STATE_PENDING", latestOrderId=None,
                                              lineItems=[{"productId": "vip_monthly"}]))
    assert pending.latest_order_id is None and not pending.paid
    assert not gp.subscription_v2(subscription("SUBSCRIPTION_STATE_PENDING")).paid
    assert gp.subscription_v2(subscription("SUBSCRIPTION_STATE_CANCELED")).paid  # paid until it expires


def test_subscription_v2_lines_are_the_latest_orders():
    state = gp.subscription_v2(subscription(lineItems=[
        {"productId": "vip_monthly", "latestSuccessfulOrderId": "GPA.2"},
        {"productId": "addon", "latestSuccessfulOrderId": "GPA.1"},
        {"productId": "addon2"}]))
    assert state.latest_order_id == "GPA.2" and [line["product"] for line in state.lines] == ["vip_monthly", "addon2"]


@pytest.mark.parametrize("payload", [subscription(lineItems=[]), subscription(subscriptionState=None),
                                     subscription(lineItems=[{"expiryTime": "x"}]), []])
def test_subscription_v2_unusable(payload):
    with pytest.raises(ValidationError):
        gp.subscription_v2(payload)


def test_voided_items():
    full = gp.voided({"kind": "androidpublisher#voidedPurchase", "purchaseToken": TOKEN, "orderId": ORDER,
                      "purchaseTimeMillis": "1", "voidedTimeMillis": "1700000000000", "voidedSource": 0,
                      "voidedReason": 7})
    assert full == {"purchase_token": TOKEN, "order_id": ORDER, "voided_quantity": None, "refund_type": 1,
                    "voided_time_ms": 1700000000000, "voided_reason": 7, "voided_source": 0, "product_type": None}
    partial = gp.voided({"purchaseToken": TOKEN, "orderId": ORDER, "voidedTimeMillis": "5", "voidedQuantity": 2})
    assert (partial["voided_quantity"], partial["refund_type"], partial["voided_time_ms"]) == (2, 2, 5)
    for bad in ({"orderId": ORDER}, {"purchaseToken": TOKEN, "voidedQuantity": 0}, None):
        with pytest.raises(ValidationError):
            gp.voided(bad)


# ---------------------------------------------------------------- canonical purchases
def test_purchase():
    n = gp.notification(b64(developer(oneTimeProductNotification={
        "notificationType": 1, "purchaseToken": TOKEN, "sku": "gems_100"})))
    p = gp.purchase(TOKEN, gp.product_purchase_v2(product_v2()), notification=n)
    assert isinstance(p, Purchase)
    assert (p.source, p.transaction_id, p.payment_ref, p.player_key) == ("google_play", TOKEN, TOKEN, TOKEN)
    assert p.player_keys == (("purchase_token", TOKEN),) and p.lookup is None
    assert p.player_id is None and p.environment == "production"
    assert p.lines == [{"store": "google_play", "product": "gems_100", "quantity": 3}]
    assert p.detail["order_id"] == ORDER and p.detail["notification_type"] == 1 and p.detail["sku"] == "gems_100"
    assert "receipts API" in p.detail["player_hint"]
    json.dumps(p.detail)


def test_purchase_players():
    state = gp.product_purchase_v2(product_v2(testPurchaseContext={"fopType": "TEST"}))
    p = gp.purchase(TOKEN, state, player_ids="obfuscated_account_id")
    assert p.player_id == "player-1" and "player_hint" not in p.detail and p.environment == "sandbox"
    assert gp.purchase(TOKEN, state, player_id="named").player_id == "named"
    bare = gp.product_purchase_v2(product_v2(obfuscatedExternalAccountId=None))
    p = gp.purchase(TOKEN, bare, player_ids="obfuscated_account_id")
    assert p.player_id is None and "no obfuscatedExternalAccountId" in p.detail["player_hint"]
    spaced = gp.product_purchase_v2(product_v2(obfuscatedExternalAccountId="a b"))
    assert gp.purchase(TOKEN, spaced, player_ids="obfuscated_account_id").player_id is None


@pytest.mark.parametrize("state", ["PENDING", "CANCELLED"])
def test_only_purchased_is_granted(state):
    with pytest.raises(ValidationError):
        gp.purchase(TOKEN, gp.product_purchase_v2(product_v2(state)))


@pytest.mark.parametrize("token", ["", "t" * 256, "a\nb", None])
def test_purchase_token_must_fit_the_ledger(token):
    with pytest.raises(ValidationError):
        gp.purchase(token, gp.product_purchase_v2(product_v2()))


def test_subscription_period():
    n = gp.notification(b64(developer(subscriptionNotification={"notificationType": 2, "purchaseToken": TOKEN})))
    p = gp.subscription_period(TOKEN, gp.subscription_v2(subscription()), player_ids="obfuscated_account_id",
                               notification=n)
    assert (p.transaction_id, p.payment_ref, p.player_key) == (f"{ORDER}..1", f"{ORDER}..1", TOKEN)
    assert p.player_keys == (("purchase_token", TOKEN),) and p.player_id == "player-1"
    assert p.detail["purchase_token"] == TOKEN and p.detail["notification_type"] == 2
    assert p.lines == [{"store": "google_play", "product": "vip_monthly", "quantity": 1}]
    assert gp.subscription_period(TOKEN, gp.subscription_v2(subscription())).player_id is None
    with pytest.raises(ValidationError):
        gp.subscription_period(TOKEN, gp.subscription_v2(subscription("SUBSCRIPTION_STATE_PENDING")))


# ---------------------------------------------------------------- canonical reversals
def test_full_refund_of_a_one_time_product_has_one_key_from_both_sources():
    n = gp.notification(b64(developer(voidedPurchaseNotification={
        "purchaseToken": TOKEN, "orderId": ORDER, "productType": 2, "refundType": 1})))
    from_notification = gp.voided_reversal(gp.voided_from_notification(n), 3)
    from_list = gp.voided_reversal(gp.voided({"purchaseToken": TOKEN, "orderId": ORDER, "voidedTimeMillis": "9"}), 3,
                                   subscription=False)
    for r in (from_notification, from_list):
        assert isinstance(r, Reversal)
        assert (r.source, r.kind, r.ref, r.amount, r.total) == ("google_play", "refund", TOKEN, None, 3)
        assert r.key == f"voided:{TOKEN}:{ORDER}:all"
    assert from_notification.key == from_list.key


def test_subscription_period_refund_names_the_order():
    item = gp.voided({"purchaseToken": TOKEN, "orderId": f"{ORDER}..1"})
    r = gp.voided_reversal(item, 1, subscription=True)
    assert r.ref == f"{ORDER}..1" and r.amount is None and r.detail["subscription"] is True
    with pytest.raises(ValidationError):
        gp.voided_reversal(gp.voided({"purchaseToken": TOKEN}), 1, subscription=True)


def test_partial_refunds_accumulate_units():
    first = gp.voided({"purchaseToken": TOKEN, "orderId": ORDER, "voidedQuantity": 1, "voidedTimeMillis": "100"})
    second = gp.voided({"purchaseToken": TOKEN, "orderId": ORDER, "voidedQuantity": 1, "voidedTimeMillis": "200"})
    r1 = gp.voided_reversal(first, 5, subscription=False)
    r2 = gp.voided_reversal(second, 5, subscription=False, previously_voided=1)
    assert (r1.amount, r1.total, r2.amount, r2.total) == (1, 5, 2, 5)
    assert r1.key != r2.key and r1.key == f"voided:{TOKEN}:{ORDER}:1:100"
    assert r2.detail["refund_quantity"] == 1 and r2.ref == TOKEN
    assert gp.voided_reversal(second, 5, subscription=False, previously_voided=9).amount == 5  # capped


def test_a_partial_refund_notification_needs_the_voided_list():
    n = gp.notification(b64(developer(voidedPurchaseNotification={
        "purchaseToken": TOKEN, "orderId": ORDER, "productType": 2, "refundType": 2})))
    with pytest.raises(ValidationError) as info:
        gp.voided_reversal(gp.voided_from_notification(n), 3)
    assert "includeQuantityBasedPartialRefund=true" in str(info.value)


def test_the_caller_says_whether_a_listed_item_is_a_subscription():
    with pytest.raises(ValidationError):
        gp.voided_reversal(gp.voided({"purchaseToken": TOKEN, "orderId": ORDER}), 1)
    with pytest.raises(ValueError):
        gp.voided_from_notification(gp.notification(b64(developer(testNotification={}))))


def test_long_tokens_are_hashed_in_reversal_keys():
    token = "t" * 250
    r = gp.voided_reversal(gp.voided({"purchaseToken": token, "orderId": ORDER}), 1, subscription=False)
    assert len(r.key) <= 255 and r.key.startswith("voided:sha256-") and r.key.endswith(f":{ORDER}:all")
    assert r.ref == token
