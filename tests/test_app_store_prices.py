"""App Store transactions' ``price`` (milli-units) / ``currency`` against the catalog's price (app_store
store_prices first) under the game's ``app_store`` policy; offer prices accepted."""
from __future__ import annotations

from middleware.ledger import repository as repo

from tests.support.app_store import Apple, write_catalog
from tests.support.apple_ca import default_chain, transaction
from tests.support.orders_flow import drain
from tests.support.price_catalogs import catalog_with
from tests.support.stripe_events import balances
from tests.support.accelbyte import make_app  # noqa: F401  (fixture)


def build(make_app, catalog_path, tmp_path, **policy) -> Apple:
    path = write_catalog(catalog_path, tmp_path)
    if policy:
        path = catalog_with(path, tmp_path / "apple-policy.toml", policy=policy)
    return Apple(make_app(catalog_path=path, apple_root_sha256=frozenset({default_chain().root.sha256.upper()})))


def found(apple: Apple, txid: str) -> dict:
    with apple.services.session() as session:
        f = repo.find(session, "demo", "app_store", txid)
        return {"state": f.state, "reason": f.reason, "attention": f.attention, "player": f.player_id}


def starter(txid: str, price: int, **kw) -> dict:
    return transaction(transaction_id=txid, product_id="com.demo.starterpack", price=price, **kw)


def test_a_shortfall_is_flagged_by_default_against_the_stores_own_price(make_app, catalog_path, tmp_path, redis,
                                                                        emulator):
    apple = build(make_app, catalog_path, tmp_path)
    apple.receipt("player-1", starter("4000000000000001", 2990), wait=5)  # the default USD 2.99; App Store: 3.99
    o = found(apple, "4000000000000001")
    assert o["state"] == "FULFILLED" and o["attention"] == "price_mismatch: paid 2.99 USD, the catalog says 3.99", o
    apple.receipt("player-1", starter("4000000000000002", 3990), wait=5)
    assert found(apple, "4000000000000002")["attention"] is None


def test_enforce_refuses_a_shortfall_and_accepts_an_offer_price(make_app, catalog_path, tmp_path, redis, emulator):
    apple = build(make_app, catalog_path, tmp_path, app_store="enforce")
    apple.receipt("player-1", starter("4100000000000001", 990), wait=5)
    o = found(apple, "4100000000000001")
    assert o["state"] == "FULFILL_FAILED" and o["reason"].startswith("price_mismatch: paid 0.99 USD"), o
    assert emulator.ledger() == []
    apple.receipt("player-1", starter("4100000000000002", 990, offerType=2, offerIdentifier="spring"), wait=5)
    assert found(apple, "4100000000000002")["state"] == "FULFILLED"
    assert balances(emulator)[0] == {"gems": 200}


def test_a_receipt_names_the_player_of_a_refused_order_but_does_not_grant_it(make_app, catalog_path, tmp_path,
                                                                             redis, emulator):
    apple = build(make_app, catalog_path, tmp_path, app_store="enforce")
    assert apple.notify(tx=starter("4200000000000001", 990)).status_code == 200  # no player yet ("linked")
    drain(redis)
    assert found(apple, "4200000000000001")["reason"].startswith("price_mismatch")
    apple.receipt("player-1", starter("4200000000000001", 990), wait=5)
    o = found(apple, "4200000000000001")
    assert o["state"] == "FULFILL_FAILED" and o["player"] == "player-1" and o["reason"].startswith("price_mismatch")
    assert emulator.ledger() == []
