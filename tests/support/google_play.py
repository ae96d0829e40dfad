"""Google Play tests: an app whose demo game takes Play notifications, with the fake Publisher API and
a local certs endpoint for the push tokens, all signed by keys the tests generate."""
from __future__ import annotations

import base64
import json
import uuid

import pytest

from tests.support.catalogs import CURRENCIES, changed_text
from tests.support.google_push_tokens import AUDIENCE, PUSH_ACCOUNT, CertsServer, make_push_token
from tests.support.accelbyte import make_app  # noqa: F401  (fixture)

PACKAGE = "com.kraty.demo"  # the fake's default package
PATH = "/webhooks/google-play"
RECEIPTS = "/v1/receipts/google-play"


@pytest.fixture(scope="session")
def certs_server():
    with CertsServer() as server:
        yield server


def write_catalog(catalog_path: str, directory, service_account: dict, player_ids: str = "linked",
                  sandbox: bool = True) -> str:
    (directory / "google-sa.json").write_text(json.dumps(service_account))
    table = (f'\n[games.demo.google_play]\npackage_name = "{PACKAGE}"\nservice_account_file = "google-sa.json"\n'
             f'push_audience = "{AUDIENCE}"\npush_service_account = "{PUSH_ACCOUNT}"\nplayer_ids = "{player_ids}"\n'
             'non_consumable = ["sword"]\n')
    text = changed_text(catalog_path, before={CURRENCIES: table}, sandbox=sandbox)
    path = directory / f"catalog-google-{player_ids}-{sandbox}.toml"
    path.write_text(text)
    return str(path)


def message(payload: dict, message_id: str | None = None) -> dict:
    data = base64.b64encode(json.dumps(payload).encode()).decode()
    return {"message": {"data": data, "messageId": message_id or str(uuid.uuid4().int)[:16],
                        "publishTime": "2026-11-21T08:00:00Z", "attributes": {}},
            "subscription": "projects/demo-project/subscriptions/play"}


def one_time(token: str, kind: int = 1, sku: str = "gems_100") -> dict:
    return {"version": "1.0", "packageName": PACKAGE, "eventTimeMillis": "1700000000000",
            "oneTimeProductNotification": {"version": "1.0", "notificationType": kind, "purchaseToken": token,
                                           "sku": sku}}


def subscription(token: str, kind: int, subscription_id: str = "vip_monthly") -> dict:
    return {"version": "1.0", "packageName": PACKAGE, "eventTimeMillis": "1700000000000",
            "subscriptionNotification": {"version": "1.0", "notificationType": kind, "purchaseToken": token,
                                         "subscriptionId": subscription_id}}


def voided(token: str, order_id: str, refund_type: int = 1, product_type: int = 2) -> dict:
    return {"version": "1.0", "packageName": PACKAGE, "eventTimeMillis": "1700000000000",
            "voidedPurchaseNotification": {"purchaseToken": token, "orderId": order_id, "productType": product_type,
                                           "refundType": refund_type}}


class Google:
    def __init__(self, app, fake):
        self.app, self.fake = app, fake
        self.client, self.services = app.test_client(), app.extensions["kraty_bridge"]
        from middleware.ledger import api_keys
        with self.services.session() as session:
            self.key = api_keys.create(session, f"backend-{uuid.uuid4().hex[:6]}", "receipts")
            session.commit()

    def push(self, payload: dict | None = None, token: str | None = None, body: dict | None = None, **claims):
        headers = {"Authorization": f"Bearer {token or make_push_token(**claims)}"}
        return self.client.post(PATH, json=body if body is not None else message(payload), headers=headers)

    def receipt(self, player: str, product_id: str, purchase_token: str, wait: float = 5, key: str | None = None):
        return self.client.post(f"{RECEIPTS}?wait={wait}", json={"playerId": player, "productId": product_id,
                                                                  "purchaseToken": purchase_token},
                                headers={"Authorization": f"Bearer {key or self.key}"})


@pytest.fixture
def google(make_app, catalog_path, tmp_path, google_fake, certs_server):
    certs_server.reset()
    path = write_catalog(catalog_path, tmp_path, google_fake.service_account())
    app = make_app(catalog_path=path, google_api_base=google_fake.url, google_token_uri=google_fake.token_uri,
                   google_certs_url=certs_server.url)
    return Google(app, google_fake)
