"""The fake Google Play API, driven through the real google-auth the way kraty-bridge calls it:
service-account credentials whose token_uri is the fake, wrapped in an AuthorizedSession."""
# ruff: noqa: F811  (the fixtures imported below are test parameters)
from __future__ import annotations

import re
import time

import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from google.auth import crypt, exceptions, jwt

from emulator.faults import ConnectionDropped
from emulator.google_play_api import create_google_app, mount_google
from emulator.google_play_store import PlayStore

from tests.support.wsgi_server import emulator_process, emulator_with
from tests.support.google_fake import GoogleFake, google_api_url, google_fake  # noqa: F401

GOOGLE_TOKEN_URI = "https://oauth2.googleapis.com/token"
SCOPE = "https://www.googleapis.com/auth/androidpublisher"
TIME = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"


def error_of(response) -> dict:
    """Google's error body, checked for shape."""
    error = response.json()["error"]
    assert set(error) == {"code", "message", "errors", "status"}, error
    assert error["code"] == response.status_code
    assert error["errors"][0]["message"] == error["message"]
    return error


def assertion(info: dict, **claims) -> str:
    """A JWT-bearer assertion signed with the account's key, like google-auth makes."""
    now = int(time.time())
    payload = {"iss": info["client_email"], "aud": GOOGLE_TOKEN_URI, "scope": SCOPE,
               "iat": now, "exp": now + 3600, **claims}
    return jwt.encode(crypt.RSASigner.from_service_account_info(info), payload).decode()


def exercise_product_calls(fake: GoogleFake) -> None:
    made = fake.product(productId="gems_100", quantity=2)
    http = fake.authorized_session()
    url = f"{fake.purchases_url()}/products/gems_100/tokens/{made['token']}"
    v2 = http.get(f"{fake.purchases_url()}/productsv2/tokens/{made['token']}")
    assert v2.json()["productLineItem"][0]["productOfferDetails"]["quantity"] == 2
    assert http.post(f"{url}:consume").status_code == 200
    assert http.get(url).json()["consumptionState"] == 1
    http.close()


def test_one_time_purchase_get_acknowledge_consume(google_fake):
    made = google_fake.product(productId="gems_100", quantity=3, test=True,
                               obfuscatedExternalAccountId="player-1",
                               orderId="GPA.1111-2222-3333-44444")
    assert made["token"] and made["orderId"] == "GPA.1111-2222-3333-44444"
    http = google_fake.authorized_session()
    v2_url = f"{google_fake.purchases_url()}/productsv2/tokens/{made['token']}"
    response = http.get(v2_url)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["kind"] == "androidpublisher#productPurchaseV2"
    assert body["productLineItem"] == [{"productId": "gems_100", "productOfferDetails": {
        "quantity": 3, "refundableQuantity": 3,
        "consumptionState": "CONSUMPTION_STATE_YET_TO_BE_CONSUMED"}}]
    assert body["purchaseStateContext"] == {"purchaseState": "PURCHASED"}
    assert body["testPurchaseContext"] == {"fopType": "TEST"}
    assert body["orderId"] == made["orderId"] and body["regionCode"] == "US"
    assert body["obfuscatedExternalAccountId"] == "player-1"
    assert body["acknowledgementState"] == "ACKNOWLEDGEMENT_STATE_PENDING"
    assert re.fullmatch(TIME, body["purchaseCompletionTime"])

    v1_url = f"{google_fake.purchases_url()}/products/gems_100/tokens/{made['token']}"
    assert http.get(v1_url).json() == {
        "kind": "androidpublisher#productPurchase",
        "purchaseTimeMillis": str(made["purchaseTimeMillis"]), "purchaseState": 0,
        "consumptionState": 0, "developerPayload": "", "orderId": made["orderId"],
        "purchaseType": 0, "acknowledgementState": 0, "quantity": 3, "refundableQuantity": 3,
        "obfuscatedExternalAccountId": "player-1", "regionCode": "US"}

    acknowledged = http.post(f"{v1_url}:acknowledge", json={"developerPayload": "kb"})
    assert (acknowledged.status_code, acknowledged.json()) == (200, {})
    assert http.post(f"{v1_url}:acknowledge").status_code == 200  # twice is fine
    assert http.get(v1_url).json()["acknowledgementState"] == 1
    assert http.post(f"{v1_url}:consume").status_code == 200
    v1 = http.get(v1_url).json()
    assert (v1["consumptionState"], v1["developerPayload"]) == (1, "kb")
    after = http.get(v2_url).json()
    assert after["productLineItem"][0]["productOfferDetails"]["consumptionState"] == \
        "CONSUMPTION_STATE_CONSUMED"
    assert after["acknowledgementState"] == "ACKNOWLEDGEMENT_STATE_ACKNOWLEDGED"

    log = google_fake.requests()
    assert [r["path"] for r in log].count("/token") == 1  # one access token for every call
    assert [(r["method"], r["path"].rpartition(":")[2], r["status"]) for r in log
            if r["method"] == "POST" and r["path"] != "/token"] == [
        ("POST", "acknowledge", 200), ("POST", "acknowledge", 200), ("POST", "consume", 200)]
    assert all(r["status"] == 200 and r["query"] == {} for r in log)


def test_several_line_items_and_v1_per_product(google_fake):
    made = google_fake.product(lineItems=[
        {"productId": "gems_100", "quantity": 2, "offerId": "spring"},
        {"productId": "sword", "purchaseOptionId": "buy"}])
    http = google_fake.authorized_session()
    lines = http.get(f"{google_fake.purchases_url()}/productsv2/tokens/{made['token']}").json()[
        "productLineItem"]
    assert [(x["productId"], x["productOfferDetails"]["quantity"]) for x in lines] == [
        ("gems_100", 2), ("sword", 1)]
    assert lines[0]["productOfferDetails"]["offerId"] == "spring"
    assert lines[1]["productOfferDetails"]["purchaseOptionId"] == "buy"
    assert "testPurchaseContext" not in http.get(
        f"{google_fake.purchases_url()}/productsv2/tokens/{made['token']}").json()
    sword = http.get(f"{google_fake.purchases_url()}/products/sword/tokens/{made['token']}")
    assert sword.json()["quantity"] == 1 and "purchaseType" not in sword.json()
    wrong = http.post(f"{google_fake.purchases_url()}/products/shield/tokens/{made['token']}"
                      ":consume")
    assert wrong.status_code == 400
    assert error_of(wrong)["message"] == "The purchase token does not match the product ID."


def test_pending_purchase_cannot_be_consumed_until_purchased(google_fake):
    made = google_fake.product(productId="gems_100", state="PENDING")
    http = google_fake.authorized_session()
    v2_url = f"{google_fake.purchases_url()}/productsv2/tokens/{made['token']}"
    v1_url = f"{google_fake.purchases_url()}/products/gems_100/tokens/{made['token']}"
    pending = http.get(v2_url).json()
    assert pending["purchaseStateContext"]["purchaseState"] == "PENDING"
    assert "purchaseCompletionTime" not in pending
    assert http.get(v1_url).json()["purchaseState"] == 2
    for action in (":consume", ":acknowledge"):
        refused = http.post(v1_url + action)
        error = error_of(refused)
        assert refused.status_code == 400 and error["status"] == "FAILED_PRECONDITION"
        assert error["errors"][0]["reason"] == "invalidPurchaseState"
    assert google_fake.update_product(made["token"], state="PURCHASED")["state"] == "PURCHASED"
    assert re.fullmatch(TIME, http.get(v2_url).json()["purchaseCompletionTime"])
    assert http.post(v1_url + ":consume").status_code == 200
    google_fake.update_product(made["token"], state="CANCELLED")
    assert http.get(v1_url).json()["purchaseState"] == 1


def test_subscription_renew_and_acknowledge(google_fake):
    made = google_fake.subscription(productId="vip_monthly", test=True,
                                    obfuscatedExternalAccountId="player-7",
                                    orderId="GPA.1234-5678-9012-34567")
    http = google_fake.authorized_session()
    url = f"{google_fake.purchases_url()}/subscriptionsv2/tokens/{made['token']}"
    body = http.get(url).json()
    assert body["kind"] == "androidpublisher#subscriptionPurchaseV2"
    assert body["subscriptionState"] == "SUBSCRIPTION_STATE_ACTIVE"
    assert body["latestOrderId"] == "GPA.1234-5678-9012-34567"
    assert body["testPurchase"] == {} and body["regionCode"] == "US"
    assert body["externalAccountIdentifiers"] == {"obfuscatedExternalAccountId": "player-7"}
    assert body["acknowledgementState"] == "ACKNOWLEDGEMENT_STATE_PENDING"
    [line] = body["lineItems"]
    assert line["productId"] == "vip_monthly" and re.fullmatch(TIME, line["expiryTime"])
    assert line["latestSuccessfulOrderId"] == "GPA.1234-5678-9012-34567"
    assert line["autoRenewingPlan"] == {"autoRenewEnabled": True}

    expiries = [line["expiryTime"]]
    for n in range(2):
        renewed = google_fake.renew(made["token"])
        assert renewed["latestOrderId"] == f"GPA.1234-5678-9012-34567..{n}"
        body = http.get(url).json()
        assert body["latestOrderId"] == f"GPA.1234-5678-9012-34567..{n}"
        assert body["lineItems"][0]["latestSuccessfulOrderId"] == body["latestOrderId"]
        expiries.append(body["lineItems"][0]["expiryTime"])
    assert expiries == sorted(expiries) and len(set(expiries)) == 3

    ack_url = (f"{google_fake.purchases_url()}/subscriptions/vip_monthly/tokens/"
               f"{made['token']}:acknowledge")
    assert http.post(ack_url, json={}).status_code == 200
    assert http.get(url).json()["acknowledgementState"] == "ACKNOWLEDGEMENT_STATE_ACKNOWLEDGED"
    wrong = http.post(ack_url.replace("/vip_monthly/", "/vip_yearly/"))
    assert wrong.status_code == 400 and error_of(wrong)["status"] == "INVALID_ARGUMENT"
    google_fake.update_subscription(made["token"], state="SUBSCRIPTION_STATE_CANCELED",
                                    autoRenewEnabled=False)
    body = http.get(url).json()
    assert body["subscriptionState"] == "SUBSCRIPTION_STATE_CANCELED"
    assert body["lineItems"][0]["autoRenewingPlan"] == {"autoRenewEnabled": False}
    # a one-time purchase token is not a subscription, and the other way round
    assert http.get(f"{google_fake.purchases_url()}/productsv2/tokens/{made['token']}"
                    ).status_code == 404


def test_voided_purchases_window_type_and_paging(google_fake):
    now = int(time.time() * 1000)
    tokens = [google_fake.product(productId="gems_100")["token"] for _ in range(5)]
    voided = [google_fake.void(token, voidedTimeMillis=now - 5000 + i * 1000, voidedReason=1)
              for i, token in enumerate(tokens)]
    assert voided[0] == {"kind": "androidpublisher#voidedPurchase", "purchaseToken": tokens[0],
                         "purchaseTimeMillis": voided[0]["purchaseTimeMillis"],
                         "voidedTimeMillis": str(now - 5000),
                         "orderId": google_fake.get_product(tokens[0])["orderId"],
                         "voidedSource": 0, "voidedReason": 1}
    subscription = google_fake.subscription(productId="vip_monthly")
    google_fake.void(subscription["token"], voidedTimeMillis=now - 500)
    multi = google_fake.product(productId="gems_100", quantity=3)
    google_fake.void(multi["token"], voidedQuantity=1, voidedTimeMillis=now - 400)

    http = google_fake.authorized_session()
    url = f"{google_fake.purchases_url()}/voidedpurchases"
    seen, pages, params = [], [], {"startTime": now - 10_000, "maxResults": 2}
    while True:
        page = http.get(url, params=params).json()
        pages.append(len(page["voidedPurchases"]))
        seen += [v["purchaseToken"] for v in page["voidedPurchases"]]
        if "tokenPagination" not in page:
            break
        params = {"token": page["tokenPagination"]["nextPageToken"], "maxResults": 2}
    assert pages == [2, 2, 1] and seen == tokens  # type 0: one-time purchases, full refunds only

    everything = http.get(url, params={"type": 1, "includeQuantityBasedPartialRefund": "true"})
    listed = everything.json()["voidedPurchases"]
    assert [v["purchaseToken"] for v in listed] == tokens + [subscription["token"],
                                                             multi["token"]]
    assert listed[-1]["voidedQuantity"] == 1 and "voidedQuantity" not in listed[0]
    assert listed[-2]["orderId"] == subscription["latestOrderId"]
    window = http.get(url, params={"startTime": now - 3500, "endTime": now - 1500}).json()
    assert [v["purchaseToken"] for v in window["voidedPurchases"]] == tokens[2:4]
    assert http.get(url, params={"startTime": now - 100}).json() == {}  # Google omits empty lists

    product = http.get(f"{google_fake.purchases_url()}/productsv2/tokens/{tokens[0]}").json()
    assert product["purchaseStateContext"]["purchaseState"] == "CANCELLED"
    assert product["productLineItem"][0]["productOfferDetails"]["refundableQuantity"] == 0
    partial = http.get(f"{google_fake.purchases_url()}/products/gems_100/tokens/{multi['token']}")
    assert (partial.json()["purchaseState"], partial.json()["refundableQuantity"]) == (0, 2)


@pytest.mark.parametrize("params", [
    {"startTime": 1}, {"endTime": int(time.time() * 1000) + 3_600_000}, {"type": 2},
    {"token": "not-a-page-token"}, {"maxResults": "many"}, {"foo": "bar"}, {"startIndex": 1},
    {"includeQuantityBasedPartialRefund": "yes"}])
def test_voided_purchases_bad_params_are_400(google_fake, params):
    response = google_fake.authorized_session().get(
        f"{google_fake.purchases_url()}/voidedpurchases", params=params)
    assert response.status_code == 400 and error_of(response)["status"] == "INVALID_ARGUMENT"


def test_unknown_token_or_package_is_404(google_fake):
    made = google_fake.product(productId="gems_100")
    http = google_fake.authorized_session()
    for url in (f"{google_fake.purchases_url()}/productsv2/tokens/nope",
                f"{google_fake.purchases_url('com.other.game')}/productsv2/tokens/{made['token']}",
                f"{google_fake.purchases_url()}/products/gems_100/tokens/nope",
                f"{google_fake.purchases_url()}/subscriptionsv2/tokens/nope"):
        response = http.get(url)
        assert response.status_code == 404 and error_of(response)["status"] == "NOT_FOUND", url
    consume = http.post(f"{google_fake.purchases_url()}/products/gems_100/tokens/nope:consume")
    assert consume.status_code == 404
    unknown_call = http.get(f"{google_fake.url}/androidpublisher/v3/applications/x/reviews")
    assert unknown_call.status_code == 404 and error_of(unknown_call)["status"] == "NOT_FOUND"


def test_api_needs_an_access_token_from_the_fake(google_fake):
    made = google_fake.product(productId="gems_100")
    url = f"{google_fake.purchases_url()}/productsv2/tokens/{made['token']}"
    for headers in ({}, {"Authorization": "Bearer ya29.made-up"}, {"Authorization": "Basic x"}):
        response = requests.get(url, headers=headers)
        assert response.status_code == 401
        assert error_of(response)["status"] == "UNAUTHENTICATED"
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
    narrow = google_fake.authorized_session(
        scopes=["https://www.googleapis.com/auth/cloud-platform"]).get(url)
    assert narrow.status_code == 403 and error_of(narrow)["status"] == "PERMISSION_DENIED"


def test_expired_access_token_is_refreshed_by_the_session(google_fake):
    made = google_fake.product(productId="gems_100")
    http = google_fake.authorized_session()
    url = f"{google_fake.purchases_url()}/productsv2/tokens/{made['token']}"
    assert http.get(url).status_code == 200
    assert google_fake.expire_tokens() == 1
    assert http.get(url).status_code == 200  # AuthorizedSession: 401 -> refresh -> retry once
    assert [(r["path"][-6:], r["status"]) for r in google_fake.requests()] == [
        ("/token", 200), (made["token"][-6:], 200), (made["token"][-6:], 401), ("/token", 200),
        (made["token"][-6:], 200)]


def test_fault_503_429_then_recovers(google_fake):
    made = google_fake.product(productId="gems_100")
    http = google_fake.authorized_session()
    url = f"{google_fake.purchases_url()}/productsv2/tokens/{made['token']}"
    google_fake.faults({"path": "/productsv2/", "method": "GET", "status": 503, "count": 1},
                       {"path": ":consume$", "status": 429, "retry_after": 7})
    failed = http.get(url)
    assert failed.status_code == 503 and error_of(failed)["status"] == "UNAVAILABLE"
    assert http.get(url).status_code == 200
    limited = http.post(f"{google_fake.purchases_url()}/products/gems_100/tokens/"
                        f"{made['token']}:consume")
    assert limited.status_code == 429 and limited.headers["Retry-After"] == "7"
    assert error_of(limited)["status"] == "RESOURCE_EXHAUSTED"
    google_fake.clear_faults()
    assert [r["status"] for r in google_fake.requests()] == [200, 503, 200, 429]


def test_fault_drop_closes_the_connection(google_fake):
    made = google_fake.product(productId="gems_100")
    http = google_fake.authorized_session()
    url = f"{google_fake.purchases_url()}/productsv2/tokens/{made['token']}"
    google_fake.faults({"path": "^/androidpublisher/", "drop": True, "count": 1})
    with pytest.raises(requests.ConnectionError):
        http.get(url)
    assert http.get(url).status_code == 200
    assert [r["status"] for r in google_fake.requests()][-2:] == ["dropped", 200]
    client = create_google_app().test_client()  # no socket to close: an exception instead
    client.put("/_google/faults", json={"rules": [{"drop": True}]})
    with pytest.raises(ConnectionDropped):
        client.post("/token")


def test_token_endpoint_fault_is_retried_inside_google_auth(google_fake):
    made = google_fake.product(productId="gems_100")
    google_fake.faults({"path": "^/token$", "status": 503, "count": 1})
    http = google_fake.authorized_session()
    url = f"{google_fake.purchases_url()}/productsv2/tokens/{made['token']}"
    assert http.get(url).status_code == 200  # google-auth retried the token call (~1 s backoff)
    assert [(r["path"], r["status"]) for r in google_fake.requests()][:2] == [
        ("/token", 503), ("/token", 200)]
    google_fake.expire_tokens()
    google_fake.faults({"path": "^/token$", "status": 400, "code": "invalid_grant"})
    with pytest.raises(exceptions.RefreshError) as err:
        http.get(url)
    assert "invalid_grant" in str(err.value) and not err.value.retryable


def test_token_endpoint_refuses_bad_assertions(google_fake):
    info = google_fake.service_account()
    other = google_fake.service_account(client_email="other@p.iam.gserviceaccount.com")
    forged = {**info, "private_key": other["private_key"]}  # right name, someone else's key
    with pytest.raises(exceptions.RefreshError, match="invalid_grant: Invalid JWT Signature"):
        google_fake.authorized_session(forged).get(google_fake.purchases_url())

    def grant(body):
        return requests.post(google_fake.token_uri, data=body)
    jwt_bearer = "urn:ietf:params:oauth:grant-type:jwt-bearer"
    now = int(time.time())
    for body, error in [
            ({"grant_type": jwt_bearer, "assertion": assertion(info, aud="https://x/token")},
             "invalid_grant"),
            ({"grant_type": jwt_bearer, "assertion": assertion(info, iat=now - 7200,
                                                               exp=now - 3600)}, "invalid_grant"),
            ({"grant_type": jwt_bearer, "assertion": assertion(info, exp=now + 7200)},
             "invalid_grant"),
            ({"grant_type": jwt_bearer, "assertion": assertion(info, scope="")}, "invalid_scope"),
            ({"grant_type": jwt_bearer, "assertion": assertion(
                info, iss="nobody@kraty-bridge-test.iam.gserviceaccount.com")}, "invalid_grant"),
            ({"grant_type": jwt_bearer, "assertion": "not.a-jwt"}, "invalid_grant"),
            ({"grant_type": jwt_bearer}, "invalid_request"),
            ({"grant_type": "client_credentials", "assertion": assertion(info)},
             "unsupported_grant_type")]:
        response = grant(body)
        assert (response.status_code, response.json()["error"]) == (400, error), response.text
        assert response.json()["error_description"]
    accepted = grant({"grant_type": jwt_bearer,
                      "assertion": assertion(info, aud=google_fake.token_uri)})
    assert accepted.status_code == 200
    assert set(accepted.json()) == {"access_token", "expires_in", "token_type"}
    assert (accepted.json()["expires_in"], accepted.json()["token_type"]) == (3600, "Bearer")


def test_service_account_with_its_own_public_key(google_fake):
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption()).decode()
    public_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    registered = google_fake.service_account(client_email="mine@p.iam.gserviceaccount.com",
                                             public_key_pem=public_pem, private_key_id="k1")
    assert "private_key" not in registered and registered["token_uri"] == google_fake.token_uri
    info = {**registered, "private_key": private_pem}
    product = google_fake.product(productId="gems_100")
    response = google_fake.authorized_session(info).get(
        f"{google_fake.purchases_url()}/productsv2/tokens/{product['token']}")
    assert response.status_code == 200
    for pem in ("-----BEGIN PUBLIC KEY-----\nxx\n",
                ec.generate_private_key(ec.SECP256R1()).public_key().public_bytes(
                    serialization.Encoding.PEM,
                    serialization.PublicFormat.SubjectPublicKeyInfo).decode()):
        refused = requests.post(f"{google_fake.url}/_google/service_accounts",
                                json={"public_key_pem": pem})
        assert refused.status_code == 400, refused.text


def test_bad_admin_bodies_and_rules_are_400(google_fake):
    admin = f"{google_fake.url}/_google"
    google_fake.product(productId="gems_100", token="dup-token")
    for method, path, body in [
            ("PUT", "/faults", {"rules": [{"path": "("}]}), ("PUT", "/faults", {"rules": [{}]}),
            ("POST", "/products", {}), ("POST", "/products", {"productId": "x", "quantity": 0}),
            ("POST", "/products", {"productId": "x", "state": "DONE"}),
            ("POST", "/products", {"productId": "x", "nope": 1}),
            ("POST", "/products", {"productId": "x", "lineItems": [{"productId": "y"}]}),
            ("PATCH", "/products/dup-token", {"state": "REFUNDED"}),
            ("POST", "/subscriptions", {"productId": "vip", "state": "ACTIVE"}),
            ("POST", "/voided", {"purchaseToken": "dup-token", "voidedQuantity": 5}),
            ("POST", "/voided", {"purchaseToken": "dup-token", "voidedReason": 9}),
            ("POST", "/service_accounts", {"client_email": 5})]:
        response = requests.request(method, admin + path, json=body)
        assert response.status_code == 400, (path, body, response.text)
        assert error_of(response)["status"] == "INVALID_ARGUMENT"
    again = requests.post(f"{admin}/products", json={"productId": "x", "token": "dup-token"})
    assert again.status_code == 409
    missing = requests.post(f"{admin}/voided", json={"purchaseToken": "nope"})
    assert missing.status_code == 404
    with pytest.raises(ValueError):
        create_google_app({"token_lifetime": 0})


def test_request_log_and_reset(google_fake):
    made = google_fake.product(productId="gems_100")
    http = google_fake.authorized_session()
    http.get(f"{google_fake.purchases_url()}/voidedpurchases", params={"maxResults": 5})
    http.get(f"{google_fake.purchases_url()}/productsv2/tokens/nope")
    assert google_fake.requests()[1:] == [
        {"method": "GET", "path": "/androidpublisher/v3/applications/com.kraty.demo/purchases/"
         "voidedpurchases", "status": 200, "query": {"maxResults": "5"}},
        {"method": "GET", "path": "/androidpublisher/v3/applications/com.kraty.demo/purchases/"
         "productsv2/tokens/nope", "status": 404, "query": {}}]
    google_fake.reset()
    assert google_fake.requests() == []
    with pytest.raises(exceptions.RefreshError, match="account not found"):
        http.get(f"{google_fake.purchases_url()}/productsv2/tokens/{made['token']}")
    # the access token went with the reset (401), and so did the account (no new token)
    assert [(r["path"][-6:], r["status"]) for r in google_fake.requests()] == [
        (made["token"][-6:], 401), ("/token", 400)]


def test_mounted_under_a_prefix_next_to_the_kraty_emulator():
    with emulator_with(mount_google) as (url, google_app):
        assert isinstance(google_app.extensions["google_play_fake"].store, PlayStore)
        fake = GoogleFake(f"{url}/google")
        assert fake.service_account()["token_uri"] == f"{url}/google/token"
        exercise_product_calls(fake)
        assert requests.get(f"{url}/_emulator/health").json()["ok"] is True
        assert requests.post(f"{url}/token").status_code == 404  # only under /google


@pytest.mark.processes
def test_python_m_emulator_serves_the_fake_under_google():
    with emulator_process() as url:
        exercise_product_calls(GoogleFake(f"{url}/google"))
