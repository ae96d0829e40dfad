"""Fulfil PUT (v2 and v3) and the retry endpoint: answers, idempotency, bundles, transient failures."""
from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.orders_flow import AUTH, drain, put_order
from tests.support.accelbyte import (GEMS_500_ID, STARTER_PACK_ID, assert_error_entity, assert_not_settled,
                                          balances, ledger_by_key, ledger_counts, nothing_changed, query_path,
                                          result_path)
from tests.support.accelbyte import make_app  # noqa: F401  (fixture)

RESULT_KEYS = {"id", "namespace", "userId", "transactionId", "state", "stateReason", "items", "stateInfo",
               "creditSummaries", "entitlementSummaries", "subscriptionSummaries"}


def entries_per_key(emulator, player="player-1") -> dict:
    return {key: len(entries) for key, entries in ledger_by_key(emulator, player).items()}


def query_rows(client, txn="txn-1") -> list:
    response = client.get(query_path() + f"?transactionId={txn}", headers=AUTH)
    assert response.status_code == 200, response.get_json()
    return response.get_json()["data"]


def query_state(client, txn="txn-1") -> dict:
    rows = query_rows(client, txn)
    assert len(rows) == 1
    return rows[0]


# ---------------------------------------------------------------- v2 / v3 answers
def test_v2_fulfilled(client, emulator):
    response = put_order(client, [{"itemSku": "gems_100", "quantity": 2, "source": "PURCHASE", "orderNo": "o-1",
                                   "storeId": "store-9", "region": "US", "language": "en",
                                   "entitlementOrigin": "Steam", "metadata": {"a": {"b": [1, 2]}}},
                                  {"itemSku": "sword", "quantity": 1}])
    assert response.status_code == 200, response.get_json()
    assert response.mimetype == "application/json" and response.headers["X-Request-Id"]
    body = response.get_json()
    assert set(body) == RESULT_KEYS
    assert body["state"] == "FULFILLED" and body["stateReason"] is None
    assert (body["namespace"], body["userId"], body["transactionId"]) == ("demo", "player-1", "txn-1")
    assert body["items"] == [
        {"itemId": "gems_100", "itemSku": "gems_100", "itemName": "100 Gems", "itemType": "COINS", "quantity": 2,
         "storeId": "store-9"},
        {"itemId": "sword", "itemSku": "sword", "itemName": "Sword", "itemType": "INGAMEITEM", "quantity": 1,
         "storeId": None}]
    assert body["stateInfo"] == {"failedList": [], "successList": [
        {"itemId": "gems_100", "itemSku": "gems_100", "error": None, "items": []},
        {"itemId": "sword", "itemSku": "sword", "error": None, "items": []}]}
    assert body["creditSummaries"] == [{"walletId": "player-1:gems", "currencyCode": "gems", "amount": 200,
                                        "namespace": "demo", "userId": "player-1"}]
    [entitlement] = body["entitlementSummaries"]
    assert entitlement["itemId"] == "sword" and entitlement["type"] in ("CONSUMABLE", "DURABLE")
    assert entitlement["namespace"] == "demo" and entitlement["userId"] == "player-1"
    assert entitlement["createdAt"] and entitlement["updatedAt"]
    assert balances(emulator) == ({"gems": 200}, {"sword": 1})
    assert sorted(entries_per_key(emulator).values()) == [1, 1]


def test_v3_fulfilled(client, emulator):
    response = put_order(client, [{"itemSku": "gold_1000", "quantity": 1}], version=3)
    assert response.status_code == 200
    assert response.get_json()["state"] == "FULFILLED"
    assert balances(emulator)[0] == {"gold": 1000}


@pytest.mark.parametrize("version, status", [(2, 409), (3, 200)])
def test_unknown_item_inside_a_valid_order_is_a_per_item_failure(client, emulator, version, status):
    response = put_order(client, [{"itemSku": "gems_100", "quantity": 1}, {"itemSku": "no_such", "quantity": 1},
                                  {"itemId": "no-such-id", "quantity": 1}], version=version)
    assert response.status_code == status, response.get_json()
    body = response.get_json()
    assert set(body) == RESULT_KEYS
    assert body["state"] == "FULFILL_FAILED"
    assert "2 item(s) failed" in body["stateReason"]
    assert [e["itemSku"] for e in body["stateInfo"]["successList"]] == ["gems_100"]
    failed = body["stateInfo"]["failedList"]
    assert [(e["itemId"], e["itemSku"]) for e in failed] == [(None, "no_such"), ("no-such-id", None)]
    assert "Item of sku [no_such] does not exist" in failed[0]["error"]
    assert "Item [no-such-id] does not exist" in failed[1]["error"]
    assert balances(emulator)[0] == {"gems": 100}
    # the known part is granted once; a repeat does not grant again and still reports the failure
    again = put_order(client, [{"itemSku": "gems_100", "quantity": 1}, {"itemSku": "no_such", "quantity": 1},
                               {"itemId": "no-such-id", "quantity": 1}], version=version)
    assert again.status_code == status and again.get_json()["id"] == body["id"]
    assert list(entries_per_key(emulator).values()) == [1]


@pytest.mark.parametrize("version, status", [(2, 409), (3, 200)])
def test_kraty_4xx_is_a_permanent_item_failure(client, emulator, redis, version, status):
    emulator.faults({"path": "/inventory/sword/grant", "status": 400, "code": "validation_failed",
                     "message": "nope"})
    items = [{"itemSku": "gems_100", "quantity": 1}, {"itemSku": "sword", "quantity": 1}]
    response = put_order(client, items, version=version)
    assert response.status_code == status
    body = response.get_json()
    assert body["state"] == "FULFILL_FAILED"
    assert "retrying" not in body["stateReason"] and "validation_failed" in body["stateReason"]
    [failed] = body["stateInfo"]["failedList"]
    assert failed["itemSku"] == "sword" and "validation_failed" in failed["error"]
    drain(redis)  # nothing is retried in the background
    assert query_state(client)["state"] == "FULFILL_FAILED"
    assert len(emulator.ledger()) == 1


@pytest.mark.parametrize("how", ["put again", "retry v2", "retry v3"])
def test_after_a_permanent_failure_only_failed_items_are_retried(client, emulator, how):
    emulator.faults({"path": "/inventory/sword/grant", "status": 403})
    items = [{"itemSku": "gems_100", "quantity": 1}, {"itemSku": "sword", "quantity": 1},
             {"itemSku": "starter_pack", "quantity": 1}]
    first = put_order(client, items)
    assert first.status_code == 409
    assert first.get_json()["state"] == "FULFILL_FAILED"
    assert [e["itemSku"] for e in first.get_json()["stateInfo"]["failedList"]] == ["sword", "starter_pack"]
    before = entries_per_key(emulator)
    assert len(before) == 3 and set(before.values()) == {1}  # gems_100, and starter_pack's gems and shield

    emulator.clear_faults()
    if how == "put again":
        response = put_order(client, items)
    else:
        response = client.put(result_path(action="retry", version=int(how[-1])), headers=AUTH)
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["id"] == first.get_json()["id"] and body["state"] == "FULFILLED"
    after = entries_per_key(emulator)
    assert len(after) == 5 and set(after.values()) == {1}
    assert {k: v for k, v in after.items() if k in before} == before
    assert balances(emulator) == ({"gems": 300}, {"sword": 2, "shield": 1})


def test_retry_while_kraty_still_refuses(client, emulator):
    emulator.faults({"path": "/inventory/sword/grant", "status": 400})
    put_order(client, [{"itemSku": "sword", "quantity": 1}, {"itemSku": "gems_100", "quantity": 1}])
    for version, status in ((2, 409), (3, 200)):
        response = client.put(result_path(action="retry", version=version), headers=AUTH)
        assert response.status_code == status
        assert response.get_json()["state"] == "FULFILL_FAILED"
    assert len(emulator.ledger()) == 1


@pytest.mark.parametrize("headers", [{"Content-Type": "application/json"}, {}, {"Content-Type": "text/plain"}],
                         ids=["json", "none", "text"])
@pytest.mark.parametrize("data", [None, b"", b"{}", b"null", b"  "], ids=["absent", "empty", "{}", "null", "blank"])
def test_retry_accepts_an_empty_body(client, emulator, headers, data):
    put_order(client, [{"itemSku": "gems_100", "quantity": 1}])
    response = client.put(result_path(action="retry"), headers={**AUTH, **headers}, data=data)
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["state"] == "FULFILLED"
    assert len(emulator.ledger()) == 1


# ---------------------------------------------------------------- idempotency by transactionId
def test_repeat_identical_put_creates_nothing(client, emulator, services):
    items = [{"itemSku": "gems_100", "quantity": 1}, {"itemSku": "shield", "quantity": 2}]
    first = put_order(client, items)
    counts = ledger_counts(services)
    kraty = emulator.ledger()
    for version in (2, 3, 2):
        again = put_order(client, items, version=version)
        assert again.status_code == 200
        assert again.get_json()["id"] == first.get_json()["id"]
        assert again.get_json()["state"] == "FULFILLED"
    # the same items in another order, with other optional fields, are the same payload
    again = put_order(client, [{**items[1], "orderNo": "x"}, {**items[0], "source": "IAP"}])
    assert again.status_code == 200 and again.get_json()["id"] == first.get_json()["id"]
    assert emulator.ledger() == kraty
    now = ledger_counts(services)
    assert now["fulfilments"] == counts["fulfilments"] == 1
    assert now["fulfilment_items"] == counts["fulfilment_items"]
    assert now["inbound_events"] == counts["inbound_events"] == 1


@pytest.mark.parametrize("other", [
    [{"itemSku": "gems_100", "quantity": 2}],
    [{"itemSku": "gems_500", "quantity": 1}],
    [{"itemSku": "gems_100", "quantity": 1}, {"itemSku": "sword", "quantity": 1}],
    [{"itemSku": "no_such_sku", "quantity": 1}, {"itemSku": "gems_100", "quantity": 1}],
], ids=["quantity", "item", "extra item", "extra unknown item"])
@pytest.mark.parametrize("version", [2, 3])
def test_same_transaction_different_items(client, emulator, services, other, version):
    put_order(client, [{"itemSku": "gems_100", "quantity": 1}])
    with nothing_changed(services, emulator):
        response = put_order(client, other, version=version)
        body = assert_error_entity(response, 400, 38128)
    assert body["errorMessage"] == "Cannot retry fulfillment with different payload. Please check the items list."


def test_same_transaction_other_user(client, emulator, services):
    put_order(client, [{"itemSku": "gems_100", "quantity": 1}])
    with nothing_changed(services, emulator):
        assert_error_entity(put_order(client, [{"itemSku": "gems_100", "quantity": 1}], user="player-2"), 400, 38128)


def test_transaction_ids_are_per_namespace_and_case_sensitive(client, emulator):
    first = put_order(client, [{"itemSku": "gems_100", "quantity": 1}], txn="abc")
    second = put_order(client, [{"itemSku": "gems_100", "quantity": 1}], txn="ABC")
    assert first.get_json()["id"] != second.get_json()["id"]
    assert balances(emulator)[0] == {"gems": 200}


# ---------------------------------------------------------------- item lookup
def test_item_id_wins_over_item_sku(client, emulator):
    response = put_order(client, [{"itemId": GEMS_500_ID, "itemSku": "gems_100", "quantity": 1}])
    assert response.status_code == 200
    [item] = response.get_json()["items"]
    assert (item["itemId"], item["itemSku"]) == (GEMS_500_ID, "gems_500")
    assert balances(emulator)[0] == {"gems": 500}


def test_quantity_multiplies_and_int32_max_is_accepted(client, emulator):
    response = put_order(client, [{"itemSku": "gems_100", "quantity": 3},
                                  {"itemSku": "gold_1000", "quantity": 2_147_483_647}])
    assert response.status_code == 200, response.get_json()
    assert balances(emulator)[0] == {"gems": 300, "gold": 2_147_483_647_000}
    credits = {c["currencyCode"]: c["amount"] for c in response.get_json()["creditSummaries"]}
    assert credits == {"gems": 300, "gold": 2_147_483_647_000}


def test_a_hundred_lines_are_accepted(client, emulator):
    response = put_order(client, [{"itemSku": "gems_100", "quantity": 1}] * 100)
    assert response.status_code == 200, response.get_json()
    assert balances(emulator)[0] == {"gems": 10_000}
    assert len(emulator.ledger()) == 100


@pytest.mark.parametrize("sku, wallet, inventory, clazz", [
    ("mystery_chest", {}, {"mystery_chest": 1}, "LOOTBOX"),
    ("soundtrack", {}, {"soundtrack": 1}, "MEDIA"),
    ("vip_monthly", {"gems": 300}, {"vip_pass": 1}, "SUBSCRIPTION"),
])
def test_item_types(client, emulator, sku, wallet, inventory, clazz):
    response = put_order(client, [{"itemSku": sku, "quantity": 1}])
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert balances(emulator) == (wallet, inventory)
    assert [e["clazz"] for e in body["entitlementSummaries"]] == [clazz]
    if clazz == "SUBSCRIPTION":
        [subscription] = body["subscriptionSummaries"]
        assert subscription["itemId"] == "vip_monthly" and subscription["userId"] == "player-1"


def test_option_box(client, emulator):
    response = put_order(client, [{"itemSku": "choice_box", "quantity": 1}])
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["entitlementSummaries"][0]["clazz"] == "OPTIONBOX"
    assert balances(emulator)[1] == {"choice_box": 1}


# ---------------------------------------------------------------- bundles
def test_bundle_grants_its_components(client, emulator):
    response = put_order(client, [{"itemId": STARTER_PACK_ID, "quantity": 2}])
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert balances(emulator) == ({"gems": 400}, {"sword": 2, "shield": 2})
    [entry] = body["stateInfo"]["successList"]
    assert entry == {"itemId": STARTER_PACK_ID, "itemSku": "starter_pack", "error": None, "items": [
        {"itemId": "gems_100", "itemSku": "gems_100", "quantity": 4, "error": None},
        {"itemId": "sword", "itemSku": "sword", "quantity": 2, "error": None},
        {"itemId": "shield", "itemSku": "shield", "quantity": 2, "error": None}]}
    assert body["items"][0]["itemType"] == "BUNDLE" and body["items"][0]["quantity"] == 2


def test_nested_bundle(client, emulator):
    response = put_order(client, [{"itemSku": "mega_bundle", "quantity": 1}])
    assert response.status_code == 200, response.get_json()
    assert balances(emulator) == ({"gems": 400, "gold": 1000}, {"sword": 2, "shield": 2})
    [entry] = response.get_json()["stateInfo"]["successList"]
    assert {c["itemSku"]: c["quantity"] for c in entry["items"]} == {"gems_100": 4, "sword": 2, "shield": 2,
                                                                    "gold_1000": 1}


@pytest.mark.parametrize("version, status", [(2, 409), (3, 200)])
def test_bundle_with_an_unsupported_item_fails_as_a_whole(client, emulator, version, status):
    response = put_order(client, [{"itemSku": "sword", "quantity": 1}, {"itemSku": "broken_bundle", "quantity": 1}],
                         version=version)
    assert response.status_code == status, response.get_json()
    body = response.get_json()
    assert body["state"] == "FULFILL_FAILED"
    assert [e["itemSku"] for e in body["stateInfo"]["successList"]] == ["sword"]
    [failed] = body["stateInfo"]["failedList"]
    assert failed["itemSku"] == "broken_bundle" and "season_pass" in failed["error"]
    # every member of the bundle is listed as failed with it
    assert {(c["itemSku"], c["quantity"]) for c in failed["items"]} == {("gems_100", 1), ("season_pass", 1)}
    assert all("season_pass" in c["error"] for c in failed["items"])
    # nothing of the bundle (not even its gems) was granted; the other line was
    assert balances(emulator) == ({}, {"sword": 1})
    assert len(emulator.ledger()) == 1
    # a retry does not grant the bundle's good part either
    client.put(result_path(action="retry"), headers=AUTH)
    assert balances(emulator) == ({}, {"sword": 1})


def test_bundle_alone_with_an_unsupported_item(client, emulator):
    response = put_order(client, [{"itemSku": "broken_bundle", "quantity": 1}])
    assert response.status_code == 409
    assert emulator.ledger() == []


def test_top_level_unsupported_item(client, emulator, services):
    with nothing_changed(services, emulator):
        body = assert_error_entity(put_order(client, [{"itemSku": "season_pass", "quantity": 1}]), 400, 38130)
    assert "SEASON" in body["errorMessage"]


# ---------------------------------------------------------------- transient failures: retried in the background
@pytest.mark.parametrize("fault", [
    {"path": "/wallet/gems/credit", "status": 503, "count": 1},
    {"path": "/wallet/gems/credit", "status": 500, "count": 3},
    {"path": "/wallet/gems/credit", "status": 429, "retry_after": 0, "count": 2},
    {"path": "/wallet/gems/credit", "status": 503, "phase": "after", "count": 1},
    {"path": "/wallet/gems/credit", "drop": True, "count": 1},
], ids=["503 once", "500 three times", "429", "503 after applying", "connection dropped"])
@pytest.mark.parametrize("version", [2, 3])
def test_transient_failure_is_retried_in_the_background(client, emulator, redis, fault, version):
    emulator.faults(fault)
    response = put_order(client, [{"itemSku": "sword", "quantity": 1}, {"itemSku": "gems_100", "quantity": 1}],
                         version=version)
    body = assert_not_settled(response, "txn-1")
    assert "retrying" in body["errorMessage"]
    assert query_rows(client) == []  # the query lists settled orders only

    drain(redis)
    row = query_state(client)
    assert row["state"] == "FULFILLED" and "stateReason" not in row
    assert set(entries_per_key(emulator).values()) == {1} and len(emulator.ledger()) == 2
    assert balances(emulator) == ({"gems": 100}, {"sword": 1})
    # and the PUT now answers FULFILLED too
    again = put_order(client, [{"itemSku": "sword", "quantity": 1}, {"itemSku": "gems_100", "quantity": 1}],
                      version=version)
    assert again.status_code == 200 and again.get_json()["state"] == "FULFILLED"
    assert len(emulator.ledger()) == 2


def test_kraty_slower_than_the_read_timeout(client, emulator, redis, services):
    """The grant is applied but the answer comes too late: the retry replays the same idempotency key."""
    assert services.settings.kraty_read_timeout == 2.0
    emulator.faults({"path": "/wallet/gems/credit", "latency_ms": 2500, "count": 1})
    response = put_order(client, [{"itemSku": "gems_100", "quantity": 1}])
    assert "timeout" in assert_not_settled(response, "txn-1")["errorMessage"]
    drain(redis)
    assert query_state(client)["state"] == "FULFILLED"
    assert len(emulator.ledger()) == 1 and balances(emulator)[0] == {"gems": 100}


def test_put_again_while_a_retry_is_scheduled(client, emulator, redis):
    emulator.faults({"path": "/wallet/gems/credit", "status": 503, "count": 1})
    first = put_order(client, [{"itemSku": "gems_100", "quantity": 1}])
    assert_not_settled(first, "txn-1")
    again = put_order(client, [{"itemSku": "gems_100", "quantity": 1}])
    assert again.status_code == 200 and again.get_json()["state"] == "FULFILLED"
    drain(redis)  # the scheduled retry finds nothing to do
    assert query_state(client)["state"] == "FULFILLED"
    assert len(emulator.ledger()) == 1


def test_retries_exhausted(make_app, emulator, redis):
    app = make_app(retry_max_attempts=3)
    client = app.test_client()
    emulator.faults({"path": "/wallet/gems/credit", "status": 503})
    response = put_order(client, [{"itemSku": "gems_100", "quantity": 1}, {"itemSku": "sword", "quantity": 1}])
    assert "retrying" in assert_not_settled(response, "txn-1")["errorMessage"]
    drain(redis)
    row = query_state(client)
    assert row["state"] == "FULFILL_FAILED"
    settled = put_order(client, [{"itemSku": "gems_100", "quantity": 1}, {"itemSku": "sword", "quantity": 1}])
    # the repeated PUT retries the failed items (Kraty still down: they fail again, final)
    assert settled.status_code == 503 or settled.get_json()["state"] == "FULFILL_FAILED"
    drain(redis)
    emulator.clear_faults()
    response = put_order(client, [{"itemSku": "gems_100", "quantity": 1}, {"itemSku": "sword", "quantity": 1}])
    assert response.status_code == 200 and response.get_json()["state"] == "FULFILLED"
    assert set(entries_per_key(emulator).values()) == {1} and len(emulator.ledger()) == 2


# ---------------------------------------------------------------- request ids
def test_request_id_is_echoed_or_made(client, emulator):
    response = put_order(client, [{"itemSku": "gems_100", "quantity": 1}],
                         headers={**AUTH, "X-Request-Id": "req-0123456789"})
    assert response.headers["X-Request-Id"] == "req-0123456789"
    response = put_order(client, [{"itemSku": "gems_100", "quantity": 1}])
    assert len(response.headers["X-Request-Id"]) >= 8
    response = put_order(client, [{"itemSku": "gems_100", "quantity": 1}], headers={**AUTH, "X-Request-Id": "bad id!"})
    assert response.headers["X-Request-Id"] != "bad id!"


@pytest.mark.parametrize("method, path, kwargs, status", [
    ("put", result_path(), {"json": {"items": [{"itemSku": "gems_100", "quantity": 1}]}}, 200),
    ("put", result_path(version=3), {"json": {"items": [{"itemSku": "gems_100", "quantity": 1}]}}, 200),
    ("put", result_path(action="retry"), {}, 200),
    ("put", result_path(action="revoke", version=3), {}, 200),
    ("put", result_path(txn="bulk", version=3), {"json": [{"transactionId": "b", "items": [{"itemSku": "sword",
                                                                                           "quantity": 1}]}]}, 200),
    ("get", query_path(), {}, 200),
    ("put", result_path(txn="nope", action="retry"), {}, 404),
    ("put", result_path(), {"json": {"items": []}}, 400),
    ("put", result_path(), {"data": "x", "content_type": "text/plain"}, 415),
    ("get", query_path() + "?limit=0", {}, 400),
    ("get", query_path("nope"), {}, 403),
    ("post", result_path(), {}, 405),
    ("get", "/platform/nothing", {}, 404),
])
def test_every_answer_has_a_request_id(client, emulator, method, path, kwargs, status):
    put_order(client, [{"itemSku": "gems_100", "quantity": 1}])
    response = getattr(client, method)(path, headers={**AUTH, "X-Request-Id": "trace-abcdef12"}, **kwargs)
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.headers["X-Request-Id"] == "trace-abcdef12"
    assert response.mimetype == "application/json"
    for headers in ({}, {"Authorization": "Bearer wrong"}):
        response = getattr(client, method)(path, headers=headers, **kwargs)
        assert response.headers.get("X-Request-Id"), (method, path)


def test_concurrent_identical_puts_grant_once(app, emulator):
    """Several storefront retries of the same order at the same moment: one order, one grant per item."""
    import threading
    items = [{"itemSku": "gems_100", "quantity": 1}, {"itemSku": "starter_pack", "quantity": 1}]
    answers, barrier = [], threading.Barrier(6)

    def put():
        client = app.test_client()
        barrier.wait()
        response = put_order(client, items)
        answers.append((response.status_code, response.get_json()))

    threads = [threading.Thread(target=put) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(answers) == 6
    assert len({body["id"] for _, body in answers}) == 1
    assert all(status in (200, 409) for status, _ in answers)
    assert set(entries_per_key(emulator).values()) == {1} and len(emulator.ledger()) == 4
    assert balances(emulator) == ({"gems": 300}, {"sword": 1, "shield": 1})
    client = app.test_client()
    assert put_order(client, items).get_json()["state"] == "FULFILLED"


@pytest.fixture
def hoard_client(make_app, catalog_path, tmp_path):
    """The test catalog plus ``hoard`` (700,000,000 gems a unit), ``hoard_chest`` (a hoard and a sword) and
    ``hoard_vault`` (two chests and a hoard: 2,100,000,000 gems a unit, under the catalog's 2^31 - 1)."""
    catalog = tmp_path / "catalog.toml"
    catalog.write_text(Path(catalog_path).read_text() + '''
[games.demo.products.hoard]
type = "COINS"
grants = [{ currency = "gems", amount = 700000000 }]

[games.demo.products.hoard_chest]
type = "BUNDLE"
contains = [{ sku = "hoard", quantity = 1 }, { sku = "sword", quantity = 1 }]

[games.demo.products.hoard_vault]
type = "BUNDLE"
contains = [{ sku = "hoard_chest", quantity = 2 }, { sku = "hoard", quantity = 1 }]
''')
    return make_app(catalog_path=str(catalog)).test_client()


HOARD = 700_000_000
LIMIT = 10**15  # KB_MAX_GRANT_TOTAL's default
LIMIT_PER_HOARD = LIMIT // HOARD  # 1,428,571 hoards: just under the limit


@pytest.mark.parametrize("items", [
    [{"itemSku": "sword", "quantity": 1}, {"itemSku": "hoard", "quantity": 2147483647}],           # one line
    [{"itemSku": "hoard", "quantity": LIMIT_PER_HOARD}, {"itemSku": "hoard", "quantity": 1}],       # the order
    [{"itemSku": "hoard_vault", "quantity": LIMIT_PER_HOARD // 3 + 1}],                              # bundle nesting
    [{"itemSku": "hoard_chest", "quantity": LIMIT_PER_HOARD}, {"itemSku": "hoard", "quantity": 1}],
], ids=["one line", "lines summed", "nested bundle", "bundle and line"])
@pytest.mark.parametrize("version", [2, 3])
def test_an_order_granting_more_than_the_limit_is_refused_before_anything_is_recorded(hoard_client, emulator,
                                                                                        items, version):
    services = hoard_client.application.extensions["kraty_bridge"]
    with nothing_changed(services, emulator):
        body = assert_error_entity(put_order(hoard_client, items, version=version), 400, 20002)
    assert "more than the 1000000000000000 one order may grant" in body["errorMessage"]
    assert body["messageVariables"]["currency"] == "gems" and int(body["messageVariables"]["total"]) > LIMIT
    with nothing_changed(services, emulator):  # and as a bulk entry
        response = hoard_client.put(result_path(txn="bulk", version=3), headers=AUTH,
                                    json=[{"transactionId": "b-1", "items": items}])
    assert response.get_json()[0]["stateReason"].startswith("20002: validation error: the order grants")


def test_an_order_at_the_limit_is_granted(hoard_client, emulator):
    response = put_order(hoard_client, [{"itemSku": "hoard_vault", "quantity": LIMIT_PER_HOARD // 3},
                                        {"itemSku": "sword", "quantity": 1}])
    assert response.status_code == 200 and response.get_json()["state"] == "FULFILLED", response.get_json()["stateReason"]
    assert balances(emulator)[0] == {"gems": LIMIT_PER_HOARD // 3 * 3 * HOARD}
