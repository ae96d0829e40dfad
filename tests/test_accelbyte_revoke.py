"""Revoke (v2 and v3): take back what was granted, exactly once; consumed boxes and the negative-balance policy."""
from __future__ import annotations

import pytest

from tests.support.orders_flow import AUTH, drain, put_order
from tests.support.accelbyte import (assert_not_settled, balances, kraty_call, ledger_by_key, query_path,
                                          result_path, write_catalog_variant)
from tests.support.accelbyte import make_app  # noqa: F401  (fixture)

REVOKE_KEYS = {"id", "namespace", "userId", "transactionId", "state", "stateInfo", "items",
               "creditRevocations", "entitlementRevocations", "itemRevocations"}
ORDER = [{"itemSku": "gems_100", "quantity": 1}, {"itemSku": "sword", "quantity": 1},
         {"itemSku": "starter_pack", "quantity": 1}]


def revoke(client, version=2, txn="txn-1", user="player-1", **kwargs):
    return client.put(result_path(user=user, txn=txn, action="revoke", version=version),
                      headers=kwargs.pop("headers", AUTH), **kwargs)


def kinds(emulator, player="player-1") -> list[str]:
    return [entry["kind"] for entry in emulator.ledger(player=player)]


def spend(emulator, currency, amount, player="player-1"):
    """The player spends currency in the game (a debit straight to Kraty)."""
    response = kraty_call(emulator, f"/players/{player}/wallet/{currency}/debit",
                          {"amount": amount, "reason": "spent in game", "idempotencyKey": f"spend-{currency}-{amount}"})
    assert response.status_code == 200, response.text


def consume(emulator, item, player="player-1"):
    """The player opens a box in the game: the crate item is taken from the inventory."""
    response = kraty_call(emulator, f"/players/{player}/inventory/{item}/revoke",
                          {"quantity": 1, "reason": "opened in game", "idempotencyKey": f"open-{item}"})
    assert response.status_code == 200, response.text


def query_row(client, txn="txn-1"):
    [row] = client.get(query_path() + f"?transactionId={txn}", headers=AUTH).get_json()["data"]
    return row


@pytest.mark.parametrize("version", [2, 3])
def test_revoke_takes_back_what_was_granted(client, emulator, version):
    fulfilled = put_order(client, ORDER).get_json()
    assert balances(emulator) == ({"gems": 300}, {"sword": 2, "shield": 1})
    response = revoke(client, version)
    assert response.status_code == 200, response.get_json()
    assert response.mimetype == "application/json"
    body = response.get_json()
    assert set(body) == REVOKE_KEYS
    assert body["state"] == "REVOKED" and body["transactionId"] == "txn-1" and body["userId"] == "player-1"
    assert body["id"] != fulfilled["id"]  # the revocation's own id
    assert balances(emulator) == ({"gems": 0}, {"sword": 0, "shield": 0})
    assert sorted(kinds(emulator)) == ["credit", "credit", "debit", "debit", "grant", "grant", "grant",
                                       "revoke", "revoke", "revoke"]
    assert sorted((c["currencyCode"], c["amount"], c["status"]) for c in body["creditRevocations"]) == [
        ("gems", 100, "SUCCESS"), ("gems", 200, "SUCCESS")]
    assert sorted((e["itemId"], e["quantity"], e["status"]) for e in body["entitlementRevocations"]) == [
        ("shield", 1, "SUCCESS"), ("sword", 1, "SUCCESS"), ("sword", 1, "SUCCESS")]
    assert [(i["itemSku"], i["status"], i["skipped"]) for i in body["itemRevocations"]] == [
        ("gems_100", "SUCCESS", False), ("sword", "SUCCESS", False), ("starter_pack", "SUCCESS", False)]
    assert body["stateInfo"]["failedList"] == []
    assert query_row(client)["state"] == "REVOKED"
    assert [a["action"] for a in query_row(client)["actions"]] == ["FULFILLMENT", "REVOKE_FULFILLMENT"]


@pytest.mark.parametrize("headers, data", [({"Content-Type": "application/json"}, b""), ({}, None),
                                           ({"Content-Type": "application/json"}, b"{}")],
                         ids=["json empty", "no content type", "{}"])
def test_revoke_twice_takes_back_once(client, emulator, headers, data):
    put_order(client, ORDER)
    for version in (2, 3, 2):
        response = revoke(client, version, headers={**AUTH, **headers}, data=data)
        assert response.status_code == 200 and response.get_json()["state"] == "REVOKED"
    assert kinds(emulator).count("debit") == 2 and kinds(emulator).count("revoke") == 3
    assert balances(emulator) == ({"gems": 0}, {"sword": 0, "shield": 0})
    assert all(len(entries) == 1 for entries in ledger_by_key(emulator).values())


def test_no_regrant_after_revocation(client, emulator):
    put_order(client, ORDER)
    revoke(client)
    before = emulator.ledger()
    response = put_order(client, ORDER)
    assert response.status_code == 200 and response.get_json()["state"] == "REVOKED"
    response = client.put(result_path(action="retry"), headers=AUTH)
    assert response.get_json()["state"] == "REVOKED"
    assert emulator.ledger() == before


@pytest.mark.parametrize("box", ["mystery_chest", "choice_box"], ids=["loot box", "option box"])
@pytest.mark.parametrize("version, status", [(2, 409), (3, 200)])
def test_revoke_an_opened_box_fails(client, emulator, version, status, box):
    put_order(client, [{"itemSku": box, "quantity": 1}, {"itemSku": "gems_100", "quantity": 1}])
    consume(emulator, box)
    response = revoke(client, version)
    assert response.status_code == status, response.get_json()
    body = response.get_json()
    assert body["state"] == "REVOKE_FAILED" and "stateReason" not in body  # not a RevokeFulfillmentV2Result field
    chest, gems = body["itemRevocations"]
    assert (chest["itemSku"], chest["status"]) == (box, "FAIL") and chest["reason"]
    assert (gems["itemSku"], gems["status"]) == ("gems_100", "SUCCESS")
    [entitlement] = body["entitlementRevocations"]
    assert entitlement["status"] == "FAIL" and "insufficient_quantity" in entitlement["reason"]
    assert [e["itemSku"] for e in body["stateInfo"]["failedList"]] == [box]
    assert balances(emulator) == ({"gems": 0}, {box: 0})
    assert query_row(client)["state"] == "REVOKE_FAILED"
    # revoking again retries only what failed: the gems are not taken twice
    again = revoke(client, version)
    assert again.status_code == status and again.get_json()["state"] == "REVOKE_FAILED"
    assert kinds(emulator).count("debit") == 1
    assert balances(emulator)[0] == {"gems": 0}


def test_revoke_an_unopened_loot_box(client, emulator):
    put_order(client, [{"itemSku": "mystery_chest", "quantity": 1}])
    assert revoke(client).get_json()["state"] == "REVOKED"
    assert balances(emulator)[1] == {"mystery_chest": 0}


@pytest.mark.parametrize("version, status", [(2, 409), (3, 200)])
def test_currency_below_zero_with_policy_fail(client, emulator, services, version, status):
    assert services.catalog.game("demo").negative_balance_policy == "fail"
    put_order(client, [{"itemSku": "gems_100", "quantity": 1}])
    spend(emulator, "gems", 60)
    response = revoke(client, version)
    assert response.status_code == status
    body = response.get_json()
    assert body["state"] == "REVOKE_FAILED"
    [credit] = body["creditRevocations"]
    assert (credit["currencyCode"], credit["amount"], credit["status"]) == ("gems", 100, "FAIL")
    assert "insufficient_funds" in credit["reason"]
    assert balances(emulator)[0] == {"gems": 40}
    assert "debit" not in [e["kind"] for e in emulator.ledger() if e["idempotencyKey"].startswith("accelbyte")]


def test_currency_below_zero_with_policy_allow_negative(make_app, catalog_path, tmp_path, emulator):
    catalog = write_catalog_variant(catalog_path, tmp_path / "catalog-negative.toml", policy="allow_negative")
    app = make_app(catalog_path=catalog)
    assert app.extensions["kraty_bridge"].catalog.game("demo").negative_balance_policy == "allow_negative"
    client = app.test_client()
    put_order(client, [{"itemSku": "gems_100", "quantity": 1}, {"itemSku": "sword", "quantity": 1}])
    spend(emulator, "gems", 60)
    response = revoke(client)
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["state"] == "REVOKED"
    assert balances(emulator) == ({"gems": -60}, {"sword": 0})
    # an item cannot go below zero whatever the policy: an opened box still fails
    put_order(client, [{"itemSku": "mystery_chest", "quantity": 1}], txn="txn-2")
    consume(emulator, "mystery_chest")
    response = revoke(client, txn="txn-2")
    assert response.status_code == 409 and response.get_json()["state"] == "REVOKE_FAILED"


def test_revoke_after_a_partial_fulfilment(client, emulator):
    """Items never granted are skipped, granted ones are taken back."""
    emulator.faults({"path": "/inventory/sword/grant", "status": 400})
    put_order(client, [{"itemSku": "gems_100", "quantity": 1}, {"itemSku": "sword", "quantity": 1},
                       {"itemSku": "no_such", "quantity": 1}])
    emulator.clear_faults()
    response = revoke(client)
    assert response.status_code == 200
    body = response.get_json()
    assert body["state"] == "REVOKED"
    assert [(i["itemSku"], i["status"], i["skipped"]) for i in body["itemRevocations"]] == [
        ("gems_100", "SUCCESS", False), ("sword", "SUCCESS", True), ("no_such", "SUCCESS", True)]
    assert kinds(emulator) == ["credit", "debit"]
    assert balances(emulator) == ({"gems": 0}, {})


@pytest.mark.parametrize("phase", ["before", "after"])
def test_revoke_while_a_grant_retry_is_scheduled(client, emulator, redis, phase):
    """A 503 does not say whether Kraty applied the grant ("after": it did, the answer was lost).
    The revocation settles the sword by replaying its grant key, then takes back what was given:
    either way the player ends with nothing, and nothing is taken that was not given."""
    emulator.faults({"path": "/inventory/sword/grant", "status": 503, "count": 1, "phase": phase})
    first = put_order(client, [{"itemSku": "gems_100", "quantity": 1}, {"itemSku": "sword", "quantity": 1}])
    assert "retrying" in assert_not_settled(first, "txn-1")["errorMessage"]
    response = revoke(client)
    assert response.status_code == 200 and response.get_json()["state"] == "REVOKED"
    drain(redis)  # the scheduled grant retry must not grant the sword any more
    assert query_row(client)["state"] == "REVOKED"
    assert kinds(emulator) == ["credit", "grant", "debit", "revoke"]
    grants = [e for e in emulator.ledger() if e["kind"] == "grant"]
    assert len(grants) == 1  # settled once, whichever call made it
    assert balances(emulator) == ({"gems": 0}, {"sword": 0})


@pytest.mark.parametrize("version", [2, 3])
def test_transient_failure_while_revoking(client, emulator, redis, version):
    """Never REVOKE_FAILED while the take-back is still being retried: 503 not settled, not listed."""
    put_order(client, [{"itemSku": "gems_100", "quantity": 1}, {"itemSku": "sword", "quantity": 1}])
    emulator.faults({"path": "/inventory/sword/revoke", "status": 503, "count": 2})
    assert_not_settled(revoke(client, version), "txn-1")
    for state in ("REVOKE_FAILED", "FULFILLED", "REVOKED"):
        rows = client.get(query_path() + f"?state={state}", headers=AUTH).get_json()["data"]
        assert rows == []
    drain(redis)
    assert query_row(client)["state"] == "REVOKED"
    assert balances(emulator) == ({"gems": 0}, {"sword": 0})
    assert all(len(entries) == 1 for entries in ledger_by_key(emulator).values())


def test_revoke_a_failed_order_that_granted_nothing(client, emulator):
    put_order(client, [{"itemSku": "broken_bundle", "quantity": 1}])
    response = revoke(client)
    assert response.status_code == 200 and response.get_json()["state"] == "REVOKED"
    assert emulator.ledger() == []
