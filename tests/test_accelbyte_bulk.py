"""v3 bulk fulfilment: several transactions of one user in one PUT."""
from __future__ import annotations

import pytest

from tests.support.orders_flow import AUTH, drain, put_order
from tests.support.accelbyte import assert_not_settled, balances, ledger_counts, query_path, result_path



def bulk(client, entries, headers=None, user="player-1"):
    return client.put(result_path(user=user, txn="bulk", version=3), json=entries, headers=headers or AUTH)


def test_bulk_with_mixed_results(client, emulator, services):
    put_order(client, [{"itemSku": "gems_100", "quantity": 1}], txn="existing")
    entries = [
        {"transactionId": "b-ok", "items": [{"itemSku": "sword", "quantity": 1}]},
        {"transactionId": "b-partly", "items": [{"itemSku": "shield", "quantity": 1},
                                                {"itemSku": "no_such", "quantity": 1}]},
        {"transactionId": "b-unknown", "items": [{"itemSku": "no_such", "quantity": 1}]},
        {"transactionId": "b-unknown-id", "items": [{"itemId": "no-such-id", "quantity": 1}]},
        {"transactionId": "b-season", "items": [{"itemSku": "season_pass", "quantity": 1}]},
        {"transactionId": "existing", "items": [{"itemSku": "gems_100", "quantity": 5}]},
        {"transactionId": "b-bundle", "items": [{"itemSku": "starter_pack", "quantity": 1}]},
    ]
    response = bulk(client, entries)
    assert response.status_code == 200, response.get_json()
    assert response.mimetype == "application/json" and response.headers["X-Request-Id"]
    results = response.get_json()
    assert [r["transactionId"] for r in results] == [e["transactionId"] for e in entries]
    assert [r["state"] for r in results] == ["FULFILLED", "FULFILL_FAILED", "FULFILL_FAILED", "FULFILL_FAILED",
                                             "FULFILL_FAILED", "FULFILL_FAILED", "FULFILLED"]
    # a refused entry says why in FulfillmentV2Result's own fields (an SDK client drops any other)
    codes = [r["stateReason"].split(":")[0] if "id" not in r else None for r in results]
    assert codes == [None, None, "30343", "30341", "38130", "38128", None]
    assert all("errorCode" not in r for r in results)
    assert all(r["namespace"] == "demo" and r["userId"] == "player-1" for r in results)
    assert [e["itemSku"] for e in results[1]["stateInfo"]["failedList"]] == ["no_such"]
    assert "different payload" in results[5]["stateReason"]
    assert results[5]["stateInfo"]["failedList"] == [
        {"itemId": None, "itemSku": "gems_100", "items": [],
         "error": "38128: Cannot retry fulfillment with different payload. Please check the items list."}]
    assert results[4]["items"] == [{"itemId": None, "itemSku": "season_pass", "quantity": 1}]
    assert results[4]["stateInfo"]["failedList"][0]["error"].startswith("38130: Cannot fulfill item with type [SEASON]")
    assert balances(emulator) == ({"gems": 300}, {"sword": 2, "shield": 2})
    # refused entries left nothing in the ledger: the existing order plus b-ok, b-partly, b-bundle
    assert ledger_counts(services)["fulfilments"] == 4
    rows = client.get(query_path(), headers=AUTH).get_json()["data"]
    assert sorted(r["transactionId"] for r in rows) == ["b-bundle", "b-ok", "b-partly", "existing"]


def test_bulk_is_idempotent(client, emulator):
    entries = [{"transactionId": f"b-{i}", "items": [{"itemSku": "gems_100", "quantity": 1}]} for i in range(3)]
    first = bulk(client, entries).get_json()
    kraty = emulator.ledger()
    again = bulk(client, entries).get_json()
    assert [r["id"] for r in again] == [r["id"] for r in first]
    assert emulator.ledger() == kraty and len(kraty) == 3
    # and a single PUT of one of them finds the same order
    single = put_order(client, [{"itemSku": "gems_100", "quantity": 1}], txn="b-1", version=3)
    assert single.get_json()["id"] == first[1]["id"]


def test_bulk_of_fifty(client, emulator):
    entries = [{"transactionId": f"b-{i}", "items": [{"itemSku": "gems_100", "quantity": 1}]} for i in range(50)]
    response = bulk(client, entries)
    assert response.status_code == 200
    assert {r["state"] for r in response.get_json()} == {"FULFILLED"}
    assert balances(emulator)[0] == {"gems": 5000}


def test_bulk_with_transient_failures(client, emulator, redis):
    emulator.faults({"path": "/wallet/gems/credit", "status": 503, "count": 1})
    entries = [{"transactionId": "b-1", "items": [{"itemSku": "gems_100", "quantity": 1}]},
               {"transactionId": "b-2", "items": [{"itemSku": "gems_100", "quantity": 1}]}]
    # b-1 is not settled: the whole answer is "not settled yet" (no entry may read FULFILL_FAILED), b-2 is done
    assert_not_settled(bulk(client, entries), "b-1")
    rows = client.get(query_path() + "?state=FULFILLED", headers=AUTH).get_json()["data"]
    assert [r["transactionId"] for r in rows] == ["b-2"]
    drain(redis)
    rows = client.get(query_path() + "?state=FULFILLED", headers=AUTH).get_json()["data"]
    assert sorted(r["transactionId"] for r in rows) == ["b-1", "b-2"]
    assert balances(emulator)[0] == {"gems": 200} and len(emulator.ledger()) == 2
    # the same bulk again answers both, settled, and grants nothing more
    again = bulk(client, entries)
    assert again.status_code == 200 and [r["state"] for r in again.get_json()] == ["FULFILLED", "FULFILLED"]
    assert len(emulator.ledger()) == 2


@pytest.mark.parametrize("user", ["player-1", "player-2"])
def test_bulk_is_per_user(client, emulator, user):
    bulk(client, [{"transactionId": "b-1", "items": [{"itemSku": "sword", "quantity": 1}]}], user=user)
    assert balances(emulator, user)[1] == {"sword": 1}
    rows = client.get(query_path() + f"?userId={user}", headers=AUTH).get_json()["data"]
    assert [r["transactionId"] for r in rows] == ["b-1"]
