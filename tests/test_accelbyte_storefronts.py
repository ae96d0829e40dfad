"""Orders belong to the storefront that created them: two storefronts allowed on the same game (demo_store
and both_store on demo) neither see nor touch each other's orders, and each has its own transaction ids."""
from __future__ import annotations

import sqlite3

import pytest
from sqlalchemy import create_engine, text

from middleware.ledger import migrate
from tests.support.orders_flow import AUTH, put_order
from tests.support.ops_ledger import key
from tests.support.accelbyte import (BOTH_AUTH, assert_error_entity, ledger_by_key, nothing_changed, query_path,
                                          result_path, write_catalog_variant, write_storefronts)
from tests.support.accelbyte import make_app  # noqa: F401  (fixture)
from tests.test_console import SECRET, sign_in

GEMS = [{"itemSku": "gems_100", "quantity": 1}]
SWORD = [{"itemSku": "sword", "quantity": 1}]


@pytest.fixture
def shared_app(make_app, catalog_path, tmp_path):
    """demo_store (AUTH) and both_store (BOTH_AUTH) both allowed on the game demo; the console on."""
    catalog = write_catalog_variant(catalog_path, tmp_path / "catalog-two-games.toml", other_game=True)
    return make_app(catalog_path=catalog, storefronts_path=write_storefronts(tmp_path / "storefronts.toml"),
                    secret_key=SECRET)


@pytest.fixture
def client(shared_app):
    return shared_app.test_client()


@pytest.fixture
def services(shared_app):
    return shared_app.extensions["kraty_bridge"]


def listed(client, headers, **params) -> list[str]:
    response = client.get(query_path(), query_string=params, headers=headers)
    assert response.status_code == 200, response.get_json()
    return [row["transactionId"] for row in response.get_json()["data"]]


def test_a_storefront_lists_only_its_own_orders(client, emulator):
    assert put_order(client, GEMS, txn="mine").status_code == 200
    assert put_order(client, SWORD, txn="theirs", headers=BOTH_AUTH).status_code == 200
    assert listed(client, AUTH) == ["mine"]
    assert listed(client, BOTH_AUTH) == ["theirs"]
    assert listed(client, BOTH_AUTH, transactionId="mine") == []
    assert listed(client, BOTH_AUTH, userId="player-1", state="FULFILLED") == ["theirs"]


@pytest.mark.parametrize("action", ["retry", "revoke"])
@pytest.mark.parametrize("version", [2, 3])
def test_a_storefront_cannot_retry_or_revoke_another_storefronts_order(client, services, emulator, action, version):
    emulator.faults({"path": "/inventory/sword/grant", "status": 400, "count": 1})
    assert put_order(client, [*GEMS, *SWORD], txn="mine").get_json()["state"] == "FULFILL_FAILED"
    with nothing_changed(services, emulator):
        response = client.put(result_path(txn="mine", action=action, version=version), headers=BOTH_AUTH)
        body = assert_error_entity(response, 404, 38145)
    assert body["errorMessage"] == "Fulfillment with transactionId [mine] does not exist"
    # the owner can
    assert client.put(result_path(txn="mine", action=action, version=version), headers=AUTH).status_code == 200


@pytest.mark.parametrize("first", ["owner", "rival"])
def test_transaction_ids_are_unique_per_storefront(client, services, emulator, first):
    """The rival's PUT with the owner's transaction id (and other items) is the rival's own order: it neither
    makes the owner's order answer 38128 nor shares its Kraty idempotency keys."""
    owner = lambda: put_order(client, GEMS, txn="order-1")  # noqa: E731
    rival = lambda: put_order(client, SWORD, txn="order-1", headers=BOTH_AUTH)  # noqa: E731
    answers = {first: (owner if first == "owner" else rival)()}
    second = "rival" if first == "owner" else "owner"
    answers[second] = (owner if second == "owner" else rival)()
    assert {who: a.status_code for who, a in answers.items()} == {"owner": 200, "rival": 200}
    assert answers["owner"].get_json()["id"] != answers["rival"].get_json()["id"]
    again = owner()
    assert again.status_code == 200 and again.get_json()["id"] == answers["owner"].get_json()["id"]
    assert again.get_json()["items"][0]["itemSku"] == "gems_100"
    keys = ledger_by_key(emulator)
    assert len(keys) == 2 and all(len(entries) == 1 for entries in keys.values())
    assert sorted(k.split(":")[0] for k in keys) == ["accelbyte/both_store/", "accelbyte/demo_store/"]
    # each revokes its own, and only its own
    revoked = client.put(result_path(txn="order-1", action="revoke"), headers=BOTH_AUTH).get_json()
    assert revoked["state"] == "REVOKED" and [i["itemSku"] for i in revoked["items"]] == ["sword"]
    assert listed(client, AUTH, state="FULFILLED") == ["order-1"]


def test_the_ops_api_and_the_console_show_the_storefront(client, services, emulator):
    put_order(client, GEMS, txn="mine")
    put_order(client, SWORD, txn="mine", headers=BOTH_AUTH)
    ops = key(services, "viewer")
    rows = client.get("/v1/fulfilments", query_string={"transactionId": "mine"}, headers=ops).get_json()["items"]
    assert sorted(row["storefront"] for row in rows) == ["both_store", "demo_store"]
    detail = client.get(f"/v1/fulfilments/{rows[0]['id']}", headers=ops).get_json()
    assert detail["storefront"] == rows[0]["storefront"]
    sign_in(client, services, "viewer")
    page = client.get(f"/console/orders/{rows[0]['id']}").get_data(as_text=True)
    assert f"storefront <strong>{rows[0]['storefront']}</strong>" in page
    listing = client.get("/console/", query_string={"q": "mine"}).get_data(as_text=True)
    assert "(both_store)" in listing and "(demo_store)" in listing


def test_existing_orders_get_the_storefront_that_created_them_and_keep_their_keys(tmp_path):
    """Migration 0007: an order recorded before belongs to the storefront of its first history entry; its
    Kraty keys stay those it was granted with (no key scope)."""
    path = tmp_path / "ledger.db"
    url = f"sqlite:///{path}"
    migrate.upgrade(url, "0006")
    with sqlite3.connect(path) as db:
        for n, (source, actor) in enumerate([("accelbyte", "storefront:acme"), ("accelbyte", "operator:bob"),
                                             ("stripe", "store:stripe")]):
            db.execute("INSERT INTO fulfilments (id, namespace, source, transaction_id, environment, state, "
                       "request_hash, lines, attempts, reversal_seq, version, created_at, updated_at, "
                       "state_changed_at) VALUES (?, 'demo', ?, ?, 'production', 'FULFILLED', 'h', '[]', 0, 0, "
                       "1, '2026-01-01', '2026-01-01', '2026-01-01')", (f"f{n}", source, f"t-{n}"))
            db.execute("INSERT INTO fulfilment_history (fulfilment_id, at, actor, to_state) "
                       "VALUES (?, '2026-01-01', ?, 'RECEIVED')", (f"f{n}", actor))
        db.execute("INSERT INTO fulfilment_history (fulfilment_id, at, actor, to_state) "
                   "VALUES ('f0', '2026-01-02', 'storefront:rival', 'REVOKING')")
    migrate.upgrade(url)
    engine = create_engine(url)
    with engine.connect() as connection:
        rows = connection.execute(text("SELECT id, storefront, key_scope FROM fulfilments ORDER BY id")).all()
    engine.dispose()
    assert [tuple(row) for row in rows] == [("f0", "acme", None), ("f1", "", None), ("f2", "", None)]
