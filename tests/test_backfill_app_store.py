"""Backfill from the App Store Server API's notification history (emulator/app_store_api.py as Apple):
a webhook outage ends with every missed purchase and refund applied once; twice, or alongside the live
webhook, changes nothing; what is refused live is refused here too."""
from __future__ import annotations

import jwt
import pytest
from appstoreserverlibrary.api_client import APIException, AppStoreServerAPIClient
from appstoreserverlibrary.models.Environment import Environment
from appstoreserverlibrary.models.NotificationHistoryRequest import NotificationHistoryRequest
from sqlalchemy import func, select

from middleware.ledger.models import InboundEvent
from middleware.metrics.backfill import GAP_EVENTS, LAST_GAP
from middleware.stores import backfill
from middleware.stores.errors import StoreError

from tests.support.app_store_api import ISSUER_ID, KEY_ID, apple_api, apple_api_url, make_apple, new_key, pem  # noqa: F401
from tests.support.app_store_api import player, signed
from tests.support.app_store import make_app  # noqa: F401  (fixture)
from tests.support.apple_ca import BUNDLE_ID, now_ms, tamper_signature
from tests.support.orders_flow import drain
from tests.support.stripe_events import balances


def app_order(services, txid):
    from middleware.ledger import repository as repo
    with services.session() as session:
        f = repo.find(session, "demo", "app_store", txid)
        return None if f is None else f.state


def events(services) -> int:
    with services.session() as session:
        return session.scalar(select(func.count()).select_from(InboundEvent).where(InboundEvent.source == "app_store"))


def test_an_outage_is_backfilled_once(make_app, catalog_path, tmp_path, apple_api, redis, emulator):
    a = make_apple(make_app, catalog_path, tmp_path, apple_api)
    p1, p2, p3 = player(), player(), player()
    live = signed("ONE_TIME_CHARGE", "2000000000000301", p3)
    assert a.client.post("/webhooks/app-store", json={"signedPayload": live}).status_code == 200
    apple_api.sent(live, delivered=True)
    # the outage: Apple sent these, the bridge got nothing
    missed = [signed("ONE_TIME_CHARGE", "2000000000000302", p1), signed("ONE_TIME_CHARGE", "2000000000000303", p2),
              signed("REFUND", "2000000000000302", p1)]
    for payload in missed:
        apple_api.sent(payload)
    for _ in range(25):  # more than one page of history (Apple pages by 20)
        apple_api.sent(signed("TEST", "x", p1))
    gap_before = GAP_EVENTS.labels("app-store")._value.get()
    result = a.app.test_cli_runner().invoke(args=["backfill", "app-store", "--json"])
    assert result.exit_code == 0, result.output
    assert '"gap": 28' in result.output and '"found": 29' in result.output
    assert GAP_EVENTS.labels("app-store")._value.get() - gap_before == 28
    assert LAST_GAP.labels("app-store")._value.get() == 28
    drain(redis)
    assert app_order(a.services, "2000000000000302") == "REVOKED"
    assert app_order(a.services, "2000000000000303") == "FULFILLED"
    assert app_order(a.services, "2000000000000301") == "FULFILLED"
    assert balances(emulator, p1)[0] == {"gems": 0} and balances(emulator, p2)[0] == {"gems": 100}
    ledger = len(emulator.ledger())
    recorded = events(a.services)
    # twice: nothing changes
    again = backfill.run(a.services, "app-store", 0)
    assert again["gap"] == 0 and again["found"] == 29
    # a live duplicate of a backfilled notification: nothing changes
    response = a.client.post("/webhooks/app-store", json={"signedPayload": missed[1]})
    assert response.status_code == 200 and response.get_json()["duplicate"] is True
    drain(redis)
    assert len(emulator.ledger()) == ledger and events(a.services) == recorded
    assert [r["path"] for r in apple_api.requests()].count("/sandbox/inApps/v1/notifications/history") == 4


def test_history_is_verified_like_the_webhook(make_app, catalog_path, tmp_path, apple_api, redis, emulator):
    a = make_apple(make_app, catalog_path, tmp_path, apple_api)
    forged = tamper_signature(signed("ONE_TIME_CHARGE", "2000000000000311", player()))
    apple_api.sent(forged)
    result = backfill.run(a.services, "app-store", now_ms() - 3_600_000)
    assert result["found"] == 1 and result["gap"] == 0
    assert events(a.services) == 0 and app_order(a.services, "2000000000000311") is None


def test_a_store_api_failure_is_reported_and_counted(make_app, catalog_path, tmp_path, apple_api):
    a = make_apple(make_app, catalog_path, tmp_path, apple_api)
    apple_api.faults({"path": "/notifications/history", "status": 503})
    result = a.app.test_cli_runner().invoke(args=["backfill", "app-store"])
    assert result.exit_code == 1 and "HTTP 503" in result.output


@pytest.mark.parametrize("change", ["key", "issuer", "bundle", "audience"])
def test_the_fake_checks_the_bearer_token_as_apple_does(apple_api, change):
    key = new_key()
    apple_api.add_key(key)
    signing = new_key() if change == "key" else key
    client = AppStoreServerAPIClient(pem(signing), KEY_ID, "other-issuer" if change == "issuer" else ISSUER_ID,
                                     "com.other.game" if change == "bundle" else BUNDLE_ID, Environment.SANDBOX)
    client._base_url = f"{apple_api.url}/sandbox"
    if change == "audience":
        original = client._generate_token
        client._generate_token = lambda: _with_claim(original(), signing, aud="appstoreconnect-v2")
    request = NotificationHistoryRequest(startDate=now_ms() - 1000, endDate=now_ms())
    with pytest.raises(APIException) as raised:
        client.get_notification_history(None, request)
    assert raised.value.http_status_code == 401


def _with_claim(token: str, key, **claims) -> str:
    payload = jwt.decode(token, options={"verify_signature": False})
    return jwt.encode({**payload, **claims}, key, algorithm="ES256", headers={"kid": KEY_ID})


def test_history_window_is_checked(make_app, catalog_path, tmp_path, apple_api):
    a = make_apple(make_app, catalog_path, tmp_path, apple_api)
    game = a.services.catalog.game("demo")
    with pytest.raises(StoreError) as raised:
        list(a.services.app_store_api.notification_history(game, "Sandbox", now_ms(), now_ms() - 1000))
    assert raised.value.code == "app_store_4000013" and not raised.value.transient
