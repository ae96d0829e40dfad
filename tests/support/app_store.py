"""App Store tests: an app whose demo game takes App Store data signed by the tests' own CA."""
from __future__ import annotations

import threading

import pytest

from middleware.ledger import api_keys

from tests.support.catalogs import BUNDLES, CURRENCIES, changed_text
from tests.support.apple_ca import BUNDLE_ID, default_chain, sign_jws, signed_notification, transaction
from tests.support.accelbyte import make_app  # noqa: F401  (fixture)

PATH = "/webhooks/app-store"
RECEIPTS = "/v1/receipts/app-store"


VIP_PLUS = ('\n[games.demo.products.vip_plus_monthly]\ntype = "SUBSCRIPTION"\nname = "VIP Plus (monthly)"\n'
            'store_ids = { app_store = "com.demo.vipplus.monthly" }\n'
            'grants = [{ item = "vip_pass", quantity = 1 }, { currency = "gems", amount = 700 }]\n')


def app_store_table(player_ids: str = "linked", production: bool = True, partial_refunds: str | None = None) -> str:
    return (f'\n[games.demo.app_store]\nbundle_id = "{BUNDLE_ID}"\napp_apple_id = 1234567890\n'
            f'allow_production = {"true" if production else "false"}\nroot_certificates = ["apple-root.cer"]\n'
            f'player_ids = "{player_ids}"\n'
            + (f'partial_refunds = "{partial_refunds}"\n' if partial_refunds else ""))


def write_catalog(catalog_path: str, directory, player_ids: str = "linked", sandbox: bool = True,
                  partial_refunds: str | None = None) -> str:
    """The demo catalog with an ``[app_store]`` table (and a second subscription tier, VIP Plus, for upgrades)."""
    default_chain().write_root(directory, "apple-root.cer")
    text = changed_text(catalog_path, before={CURRENCIES: app_store_table(player_ids, partial_refunds=partial_refunds),
                                              BUNDLES: VIP_PLUS}, sandbox=sandbox)
    path = directory / f"catalog-apple-{player_ids}-{sandbox}-{partial_refunds}.toml"
    path.write_text(text)
    return str(path)


class Apple:
    """The app under test, its client and services, and a receipts key."""

    def __init__(self, app):
        self.app, self.client, self.services = app, app.test_client(), app.extensions["kraty_bridge"]
        self.key = self.make_key("studio-backend", "receipts")

    def make_key(self, name: str, role: str, namespaces=None) -> str:
        with self.services.session() as session:
            key = api_keys.create(session, name, role, namespaces)
            session.commit()
        return key

    def notify(self, kind: str = "ONE_TIME_CHARGE", tx: dict | None = None, **kw):
        return self.client.post(PATH, json={"signedPayload": signed_notification(kind, tx=tx, **kw)})

    def receipt(self, player: str, tx: dict, key: str | None = None, wait: float | None = None, signed=None):
        query = "" if wait is None else f"?wait={wait}"
        return self.client.post(RECEIPTS + query, json={"playerId": player,
                                                        "signedTransaction": signed or sign_jws(tx)},
                                headers={"Authorization": f"Bearer {key or self.key}"})


@pytest.fixture
def apple(make_app, catalog_path, shared_files):
    app = make_app(catalog_path=write_catalog(catalog_path, shared_files),
                   apple_root_sha256=frozenset({default_chain().root.sha256.upper()}))
    return Apple(app)


def concurrently(n: int, call):
    results, barrier = [None] * n, threading.Barrier(n)

    def run(i):
        barrier.wait()
        results[i] = call()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


__all__ = ["Apple", "apple", "concurrently", "transaction", "PATH", "RECEIPTS"]
