"""Bad input to the AccelByte-compatible API: always a 4xx ErrorEntity, never a 500, and nothing changes
in the ledger or in Kraty."""
from __future__ import annotations

import json

import pytest

from tests.support.orders_flow import AUTH, put_order
from tests.support.accelbyte import (BOTH_AUTH, OTHER_AUTH, assert_error_entity, ledger_counts,  # noqa: F401
                                          make_app, nothing_changed, put_json, query_path, result_path,
                                          two_games_app)

GOOD_ITEM = {"itemSku": "gems_100", "quantity": 1}
SEED_TXN = "seed-txn"


@pytest.fixture
def seeded(client, services, emulator):
    """One fulfilled order already in the ledger (so "unchanged" means more than "still empty")."""
    response = put_order(client, [GOOD_ITEM, {"itemSku": "sword", "quantity": 1}], txn=SEED_TXN)
    assert response.status_code == 200, response.get_json()
    assert ledger_counts(services)["fulfilments"] == 1
    assert len(emulator.ledger()) == 2
    return services


def expect_rejected(client, services, emulator, method, path, status, code=None, **kwargs):
    with nothing_changed(services, emulator):
        response = getattr(client, method)(path, **kwargs)
        body = assert_error_entity(response, status, code)
    return body


# ---------------------------------------------------------------- bodies of the fulfil PUT
MALFORMED = {
    "truncated": b'{"items": [',
    "not json": b"items=1",
    "empty": b"",
    "whitespace": b"   ",
    "trailing garbage": b'{"items": [{"itemSku": "gems_100", "quantity": 1}]} x',
    "single quotes": b"{'items': []}",
    "invalid utf-8": b'{"items": [{"itemSku": "gems_\xff", "quantity": 1}]}',
    "NaN": b'{"items": [{"itemSku": "gems_100", "quantity": 1, "metadata": {"x": NaN}}]}',
    "Infinity quantity": b'{"items": [{"itemSku": "gems_100", "quantity": Infinity}]}',
    "deeply nested": b"[" * 200_000 + b"]" * 200_000,
    "deeply nested in metadata": (b'{"items": [{"itemSku": "gems_100", "quantity": 1, "metadata": {"x": '
                                  + b"[" * 100_000 + b"]" * 100_000 + b"}}]}"),
    "huge integer literal": b'{"items": [{"itemSku": "gems_100", "quantity": 1' + b"0" * 5000 + b"}]}",
}


@pytest.mark.parametrize("version", [2, 3])
@pytest.mark.parametrize("body", list(MALFORMED.values()), ids=list(MALFORMED))
def test_malformed_json(client, seeded, emulator, body, version):
    for txn in ("txn-bad", SEED_TXN):
        with nothing_changed(seeded, emulator):
            response = client.put(result_path(txn=txn, version=version), data=body, headers=AUTH,
                                  content_type="application/json")
            assert_error_entity(response, 400, 20019)


@pytest.mark.parametrize("content_type", [None, "text/plain", "application/x-www-form-urlencoded",
                                          "multipart/form-data; boundary=x", "application/jsonx",
                                          "application/octet-stream", "text/json"])
def test_wrong_content_type(client, seeded, emulator, content_type):
    body = json.dumps({"items": [GOOD_ITEM]})
    headers = dict(AUTH)
    if content_type:
        headers["Content-Type"] = content_type
    with nothing_changed(seeded, emulator):
        response = client.put(result_path(txn="txn-bad"), data=body, headers=headers)
        assert_error_entity(response, 415, 20025)


def test_content_type_parameters_are_fine(client, services, emulator):
    response = client.put(result_path(), data=json.dumps({"items": [GOOD_ITEM]}),
                          headers={**AUTH, "Content-Type": "application/json; charset=utf-8"})
    assert response.status_code == 200, response.get_json()


def test_overlong_content_type_header_is_not_a_500(client, services, emulator):
    """The raw Content-Type is stored with the event (a 128-character column on PostgreSQL)."""
    content_type = "application/json; charset=utf-8; x=" + "a" * 300
    response = client.put(result_path(), data=json.dumps({"items": [GOOD_ITEM]}),
                          headers={**AUTH, "Content-Type": content_type})
    assert response.status_code == 200, response.get_json()


def big_body(size: int) -> bytes:
    item = {**GOOD_ITEM, "metadata": {"pad": "x" * 1000}}
    body = json.dumps({"items": [item] * (size // 1000 + 1)}).encode()
    assert len(body) > size
    return body


def test_body_over_the_configured_limit(make_app, services, emulator):
    small = make_app(max_body_bytes=2048)
    client = small.test_client()
    with nothing_changed(services, emulator):
        response = client.put(result_path(), data=big_body(2048), headers=AUTH, content_type="application/json")
        assert_error_entity(response, 413, 20026)
    # at the limit and below it: fine
    body = json.dumps({"items": [GOOD_ITEM]}).encode()
    response = client.put(result_path(), data=body, headers=AUTH, content_type="application/json")
    assert response.status_code == 200, response.get_json()


def test_body_over_the_default_limit(client, seeded, emulator, services):
    limit = services.settings.max_body_bytes
    with nothing_changed(seeded, emulator):
        response = client.put(result_path(txn="txn-bad"), data=big_body(limit), headers=AUTH,
                              content_type="application/json")
        assert_error_entity(response, 413, 20026)


def test_oversized_bulk_and_retry_bodies(client, seeded, emulator, services):
    limit = services.settings.max_body_bytes
    with nothing_changed(seeded, emulator):
        response = client.put(result_path(txn="bulk", version=3), data=b"[" + b" " * limit + b"]", headers=AUTH,
                              content_type="application/json")
        assert_error_entity(response, 413, 20026)
        response = client.put(result_path(txn=SEED_TXN, action="retry"), data=b" " * (limit + 1), headers=AUTH,
                              content_type="application/json")
        assert_error_entity(response, 413, 20026)


BAD_BODIES = {
    "no items": {},
    "items null": {"items": None},
    "items not a list": {"items": GOOD_ITEM},
    "empty items": {"items": []},
    "too many items": {"items": [GOOD_ITEM] * 101},
    "item not an object": {"items": ["gems_100"]},
    "item null": {"items": [None]},
    "unknown top-level field": {"items": [GOOD_ITEM], "userId": "someone-else"},
    "unknown item field": {"items": [{**GOOD_ITEM, "price": 1}]},
    "no quantity": {"items": [{"itemSku": "gems_100"}]},
    "quantity 0": {"items": [{"itemSku": "gems_100", "quantity": 0}]},
    "quantity negative": {"items": [{"itemSku": "gems_100", "quantity": -1}]},
    "quantity beyond int32": {"items": [{"itemSku": "gems_100", "quantity": 2_147_483_648}]},
    "quantity huge": {"items": [{"itemSku": "gems_100", "quantity": 10**30}]},
    "quantity float": {"items": [{"itemSku": "gems_100", "quantity": 1.5}]},
    "quantity integral float": {"items": [{"itemSku": "gems_100", "quantity": 1.0}]},
    "quantity exponent": {"items": [{"itemSku": "gems_100", "quantity": 1e2}]},
    "quantity string": {"items": [{"itemSku": "gems_100", "quantity": "1"}]},
    "quantity bool": {"items": [{"itemSku": "gems_100", "quantity": True}]},
    "quantity null": {"items": [{"itemSku": "gems_100", "quantity": None}]},
    "neither itemId nor itemSku": {"items": [{"quantity": 1}]},
    "only other fields": {"items": [{"quantity": 1, "source": "PURCHASE", "orderNo": "o-1"}]},
    "itemSku empty": {"items": [{"itemSku": "", "quantity": 1}]},
    "itemSku null": {"items": [{"itemSku": None, "quantity": 1}]},
    "itemSku not a string": {"items": [{"itemSku": 100, "quantity": 1}]},
    "itemSku with a space": {"items": [{"itemSku": "gems 100", "quantity": 1}]},
    "itemSku over-long": {"items": [{"itemSku": "g" * 129, "quantity": 1}]},
    "itemId non-printable": {"items": [{"itemId": "gems\u0000", "quantity": 1}]},
    "itemId lone surrogate": {"items": [{"itemId": "\ud800", "quantity": 1}]},
    "entitlementOrigin unknown": {"items": [{**GOOD_ITEM, "entitlementOrigin": "Gog"}]},
    "startDate not a date": {"items": [{**GOOD_ITEM, "startDate": "yesterday"}]},
    "startDate without zone": {"items": [{**GOOD_ITEM, "startDate": "2026-01-01T00:00:00"}]},
    "duration 0": {"items": [{**GOOD_ITEM, "duration": 0}]},
    "duration string": {"items": [{**GOOD_ITEM, "duration": "30"}]},
    "metadata not an object": {"items": [{**GOOD_ITEM, "metadata": ["x"]}]},
    "metadata nested too deep": {"items": [{**GOOD_ITEM, "metadata": {"x": json.loads("[" * 16 + "]" * 16)}}]},
    "metadata nested far too deep": {"items": [{**GOOD_ITEM, "metadata": {"x": json.loads("[" * 930 + "]" * 930)}}]},
    "source empty": {"items": [{**GOOD_ITEM, "source": ""}]},
    "orderNo over-long": {"items": [{**GOOD_ITEM, "orderNo": "o" * 129}]},
    "storeId not a string": {"items": [{**GOOD_ITEM, "storeId": 7}]},
}


@pytest.mark.parametrize("version", [2, 3])
@pytest.mark.parametrize("body", list(BAD_BODIES.values()), ids=list(BAD_BODIES))
def test_invalid_body(client, seeded, emulator, body, version):
    for txn in ("txn-bad", SEED_TXN):
        body_json = assert_error_entity_put(client, seeded, emulator, result_path(txn=txn, version=version), body)
        assert body_json["errorCode"] == 20002


def assert_error_entity_put(client, services, emulator, path, body, status=400, code=None):
    with nothing_changed(services, emulator):
        response = put_json(client, path, body)
        return assert_error_entity(response, status, code)


@pytest.mark.parametrize("body", [[], "items", 1, None, True], ids=["list", "string", "number", "null", "bool"])
def test_body_that_is_not_an_object(client, seeded, emulator, body):
    out = assert_error_entity_put(client, seeded, emulator, result_path(txn="txn-bad"), body)
    assert out["errorCode"] == 20002


def test_top_level_list_of_a_valid_item_is_refused(client, seeded, emulator):
    assert_error_entity_put(client, seeded, emulator, result_path(txn="txn-bad"), [GOOD_ITEM], 400, 20002)


def test_error_message_names_the_field(client, seeded, emulator):
    body = assert_error_entity_put(client, seeded, emulator, result_path(txn="txn-bad"),
                                   {"items": [GOOD_ITEM, {"itemSku": "sword", "quantity": 0}]})
    assert "items.1.quantity" in body["errorMessage"]


# ---------------------------------------------------------------- items we do not know or cannot fulfil
@pytest.mark.parametrize("items, code", [
    ([{"itemSku": "no_such_sku", "quantity": 1}], 30343),
    ([{"itemId": "no-such-id", "quantity": 1}], 30341),
    ([{"itemId": "no-such-id", "itemSku": "gems_100", "quantity": 1}], 30341),  # itemId wins
    ([{"itemSku": "no_such_sku", "quantity": 1}, {"itemSku": "other_unknown", "quantity": 2}], 30343),
    ([{"itemId": "gems_100x", "quantity": 1}, {"itemSku": "nope", "quantity": 2}], 30341),
], ids=["sku", "item id", "item id wins over a known sku", "two unknown skus", "unknown id then unknown sku"])
@pytest.mark.parametrize("version", [2, 3])
def test_unknown_items_only(client, seeded, emulator, items, code, version):
    body = assert_error_entity_put(client, seeded, emulator, result_path(txn="txn-bad", version=version),
                                   {"items": items}, 404, code)
    assert "does not exist" in body["errorMessage"]


@pytest.mark.parametrize("version", [2, 3])
def test_top_level_unsupported_item_type(client, seeded, emulator, version):
    for items in ([{"itemSku": "season_pass", "quantity": 1}],
                  [GOOD_ITEM, {"itemSku": "season_pass", "quantity": 1}],
                  [{"itemSku": "nope", "quantity": 1}, {"itemSku": "season_pass", "quantity": 1}]):
        assert_error_entity_put(client, seeded, emulator, result_path(txn="txn-bad", version=version),
                                {"items": items}, 400, 38130)


# ---------------------------------------------------------------- ids in the path
BAD_IDS = {
    "over-long": "a" * 129,
    "space": "a%20b",
    "tab": "a%09b",
    "NUL": "a%00b",
    "bell": "a%07",
    "DEL": "a%7F",
    "newline": "a%0Ab",
    "zero-width space": "a%E2%80%8Bb",
    "line separator": "a%E2%80%A8b",
    "no-break space": "a%C2%A0b",
}


@pytest.mark.parametrize("bad", list(BAD_IDS.values()), ids=list(BAD_IDS))
@pytest.mark.parametrize("which", ["userId", "transactionId"])
@pytest.mark.parametrize("action", ["", "retry", "revoke"])
def test_bad_ids(client, seeded, emulator, bad, which, action):
    user, txn = ("player-1", bad) if which == "transactionId" else (bad, SEED_TXN)
    for version in (2, 3):
        path = result_path(user=user, txn=txn, version=version, action=action)
        kwargs = {"json": {"items": [GOOD_ITEM]}} if not action else {}
        body = expect_rejected(client, seeded, emulator, "put", path, 400, 20002, headers=AUTH, **kwargs)
        assert which in body["errorMessage"]


def test_ids_at_the_limit_are_fine(client, services, emulator):
    user, txn = "u" * 128, "t" * 128
    response = put_order(client, [GOOD_ITEM], user=user, txn=txn)
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["transactionId"] == txn and response.get_json()["userId"] == user


def test_bad_user_id_in_bulk(client, seeded, emulator):
    path = result_path(user="a%00", txn="bulk", version=3)
    expect_rejected(client, seeded, emulator, "put", path, 400, 20002, headers=AUTH,
                    json=[{"transactionId": "b-1", "items": [GOOD_ITEM]}])


# ---------------------------------------------------------------- namespaces and tokens
def test_unknown_namespace(client, seeded, emulator):
    """A namespace the token may not use answers exactly as one that does not exist: 403 20013, nothing more."""
    forbidden = None
    for path in (result_path(ns="nope", txn="txn-bad"), result_path(ns="nope", txn=SEED_TXN, action="retry"),
                 result_path(ns="nope", txn=SEED_TXN, action="revoke"), result_path(ns="nope", txn="bulk", version=3),
                 query_path("nope")):
        method = "get" if path.endswith("fulfillments") else "put"
        kwargs = {"json": {"items": [GOOD_ITEM]}} if path.endswith("txn-bad") else {}
        body = expect_rejected(client, seeded, emulator, method, path, 403, 20013, headers=AUTH, **kwargs)
        assert body == {"errorCode": 20013, "errorMessage": "insufficient permissions"}
        response = getattr(client, method)(path.replace("/namespaces/nope/", "/namespaces/other/"), headers=AUTH,
                                           **kwargs)  # "other" is no game of this catalog either
        forbidden = forbidden or body
        assert response.get_json() == forbidden


ALL_PATHS = [
    ("put", result_path(txn="txn-bad"), {"json": {"items": [GOOD_ITEM]}}),
    ("put", result_path(txn="txn-bad", version=3), {"json": {"items": [GOOD_ITEM]}}),
    ("put", result_path(txn=SEED_TXN, action="retry"), {}),
    ("put", result_path(txn=SEED_TXN, action="retry", version=3), {}),
    ("put", result_path(txn=SEED_TXN, action="revoke"), {}),
    ("put", result_path(txn=SEED_TXN, action="revoke", version=3), {}),
    ("put", result_path(txn="bulk", version=3), {"json": [{"transactionId": "b-1", "items": [GOOD_ITEM]}]}),
    ("get", query_path(), {}),
]
BAD_AUTH = {
    "missing": {},
    "unknown token": {"Authorization": "Bearer not-a-token"},
    "empty bearer": {"Authorization": "Bearer "},
    "scheme only": {"Authorization": "Bearer"},
    "basic": {"Authorization": "Basic ZGVtbzpkZW1v"},
    "token without scheme": {"Authorization": "demo-storefront-token"},
    "token with a suffix": {"Authorization": "Bearer demo-storefront-token2"},
    "non-ascii token": {"Authorization": "Bearer d\u00e9mo"},
}


@pytest.mark.parametrize("method, path, kwargs", ALL_PATHS, ids=[p[1].rsplit("/", 1)[-1] + p[0] for p in ALL_PATHS])
@pytest.mark.parametrize("headers", list(BAD_AUTH.values()), ids=list(BAD_AUTH))
def test_missing_or_unknown_token(client, seeded, emulator, method, path, kwargs, headers):
    expect_rejected(client, seeded, emulator, method, path, 401, 20001, headers=headers, **kwargs)


def test_unknown_token_is_refused_before_the_namespace_is_revealed(client, seeded, emulator):
    expect_rejected(client, seeded, emulator, "put", result_path(ns="nope"), 401, 20001,
                    headers={"Authorization": "Bearer x"}, json={"items": [GOOD_ITEM]})


def test_token_for_another_namespace(two_games_app, emulator):
    client = two_games_app.test_client()
    services = two_games_app.extensions["kraty_bridge"]
    assert put_order(client, [GOOD_ITEM], txn=SEED_TXN).status_code == 200
    for method, path, kwargs in ALL_PATHS:
        body = expect_rejected(client, services, emulator, method, path, 403, 20013, headers=OTHER_AUTH, **kwargs)
        assert body == {"errorCode": 20013, "errorMessage": "insufficient permissions"}
    # the demo token may not use the other game either
    for method, path, kwargs in ALL_PATHS:
        other_path = path.replace("/namespaces/demo/", "/namespaces/other/")
        expect_rejected(client, services, emulator, method, other_path, 403, 20013, headers=AUTH, **kwargs)


def test_a_token_for_both_namespaces(two_games_app, emulator):
    client = two_games_app.test_client()
    response = put_order(client, [GOOD_ITEM], headers=BOTH_AUTH)
    assert response.status_code == 200, response.get_json()
    rows = client.get(query_path("other"), headers=BOTH_AUTH).get_json()["data"]
    assert rows == []
    rows = client.get(query_path("demo"), headers=BOTH_AUTH).get_json()["data"]
    assert [row["transactionId"] for row in rows] == ["txn-1"]
    # a rotated-out hash still listed authenticates too; a token of one store is not another's
    assert client.get(query_path("demo"), headers={"Authorization": "Bearer rotated-out-token"}).status_code == 200


def test_orders_of_two_namespaces_are_separate(two_games_app, emulator):
    """The same transactionId in two namespaces is two orders; the other namespace's query does not show it."""
    client = two_games_app.test_client()
    assert put_order(client, [GOOD_ITEM], headers=BOTH_AUTH).status_code == 200
    response = client.put(result_path(txn="txn-1", action="retry").replace("/demo/", "/other/"), headers=BOTH_AUTH)
    assert_error_entity(response, 404, 38145)


# ---------------------------------------------------------------- retry / revoke / bulk bad input
@pytest.mark.parametrize("action", ["retry", "revoke"])
@pytest.mark.parametrize("version", [2, 3])
def test_retry_and_revoke_take_no_body(client, seeded, emulator, action, version):
    path = result_path(txn=SEED_TXN, action=action, version=version)
    for body in (json.dumps({"items": [GOOD_ITEM]}), "[]", "x"):
        expect_rejected(client, seeded, emulator, "put", path, 400, 20002, headers=AUTH, data=body,
                        content_type="application/json")


@pytest.mark.parametrize("action", ["retry", "revoke"])
@pytest.mark.parametrize("version", [2, 3])
def test_retry_and_revoke_of_an_unknown_transaction(client, seeded, emulator, action, version):
    path = result_path(txn="never-seen", action=action, version=version)
    body = expect_rejected(client, seeded, emulator, "put", path, 404, 38145, headers=AUTH)
    assert body["errorMessage"] == "Fulfillment with transactionId [never-seen] does not exist"
    assert body["messageVariables"] == {"transactionId": "never-seen"}
    # the transaction exists, but for another user
    path = result_path(user="player-2", txn=SEED_TXN, action=action, version=version)
    expect_rejected(client, seeded, emulator, "put", path, 404, 38145, headers=AUTH)


BAD_BULKS = {
    "object": {"transactionId": "b-1", "items": [GOOD_ITEM]},
    "empty list": [],
    "over 50": [{"transactionId": f"b-{i}", "items": [GOOD_ITEM]} for i in range(51)],
    "entry not an object": ["b-1"],
    "missing transactionId": [{"items": [GOOD_ITEM]}],
    "missing items": [{"transactionId": "b-1"}],
    "empty items": [{"transactionId": "b-1", "items": []}],
    "bad transactionId": [{"transactionId": "b 1", "items": [GOOD_ITEM]}],
    "over-long transactionId": [{"transactionId": "b" * 129, "items": [GOOD_ITEM]}],
    "transactionId not a string": [{"transactionId": 1, "items": [GOOD_ITEM]}],
    "unknown entry field": [{"transactionId": "b-1", "items": [GOOD_ITEM], "userId": "x"}],
    "one bad entry among good": [{"transactionId": "b-1", "items": [GOOD_ITEM]},
                                 {"transactionId": "b-2", "items": [{"itemSku": "gems_100", "quantity": 0}]}],
    "duplicate transactionId": [{"transactionId": "b-1", "items": [GOOD_ITEM]},
                                {"transactionId": "b-1", "items": [GOOD_ITEM]}],
    "duplicate transactionId, other items": [{"transactionId": "b-1", "items": [GOOD_ITEM]},
                                             {"transactionId": "b-1", "items": [{"itemSku": "sword", "quantity": 1}]}],
}


@pytest.mark.parametrize("body", list(BAD_BULKS.values()), ids=list(BAD_BULKS))
def test_invalid_bulk(client, seeded, emulator, body):
    out = assert_error_entity_put(client, seeded, emulator, result_path(txn="bulk", version=3), body)
    assert out["errorCode"] == 20002


def test_bulk_malformed_and_wrong_type(client, seeded, emulator):
    path = result_path(txn="bulk", version=3)
    expect_rejected(client, seeded, emulator, "put", path, 400, 20019, headers=AUTH, data=b"[{",
                    content_type="application/json")
    expect_rejected(client, seeded, emulator, "put", path, 415, 20025, headers=AUTH,
                    data=json.dumps([{"transactionId": "b-1", "items": [GOOD_ITEM]}]), content_type="text/plain")


# ---------------------------------------------------------------- query parameters
BAD_QUERIES = {
    "unknown parameter": "foo=1",
    "snake case": "transaction_id=seed-txn",
    "bad state": "state=GRANTED",
    "internal state": "state=FULFILLING",
    "lower-case state": "state=fulfilled",
    "empty state": "state=",
    "limit 0": "limit=0",
    "limit 101": "limit=101",
    "limit negative": "limit=-1",
    "limit text": "limit=ten",
    "limit float": "limit=1.5",
    "limit empty": "limit=",
    "limit superscript digit": "limit=%C2%B2",
    "limit arabic-indic digits": "limit=%D9%A1%D9%A0",
    "limit huge": "limit=" + "9" * 5000,
    "offset negative": "offset=-1",
    "offset text": "offset=x",
    "offset huge": "offset=" + "9" * 5000,
    "offset superscript digit": "offset=%C2%B9",
    "startTime unparseable": "startTime=yesterday",
    "startTime zone-less": "startTime=2026-01-01T00:00:00",
    "startTime date only": "startTime=2026-01-01",
    "endTime unparseable": "endTime=2026-13-01T00:00:00Z",
    "endTime zone-less": "endTime=2026-01-01T10:00:00.123",
    "reversed times": "startTime=2026-02-01T00:00:00Z&endTime=2026-01-01T00:00:00Z",
    "equal times": "startTime=2026-02-01T00:00:00Z&endTime=2026-02-01T00:00:00Z",
    "reversed across zones": "startTime=2026-02-01T01:00:00Z&endTime=2026-02-01T02:00:00%2B02:00",
    "reversed across zones, plus as space": "startTime=2026-02-01T01:00:00Z&endTime=2026-02-01T02:00:00+02:00",
    "time at the edge of the calendar": "startTime=0001-01-01T00:00:00%2B01:00",
    "time past the end of the calendar": "endTime=9999-12-31T23:59:59-01:00",
}


@pytest.mark.parametrize("query", list(BAD_QUERIES.values()), ids=list(BAD_QUERIES))
def test_query_with_bad_parameters(client, seeded, emulator, query):
    expect_rejected(client, seeded, emulator, "get", query_path() + "?" + query, 400, 20002, headers=AUTH)


# ---------------------------------------------------------------- other requests that are not ours
def test_unknown_path_and_method_answer_error_entities(client, seeded, emulator):
    expect_rejected(client, seeded, emulator, "put", "/platform/v2/admin/namespaces/demo/nothing", 404, 20008,
                    headers=AUTH)
    expect_rejected(client, seeded, emulator, "post", result_path(txn="txn-bad"), 405, None, headers=AUTH,
                    json={"items": [GOOD_ITEM]})
    expect_rejected(client, seeded, emulator, "delete", result_path(txn=SEED_TXN), 405, None, headers=AUTH)
    expect_rejected(client, seeded, emulator, "put", result_path(txn=SEED_TXN, action="refund"), 404, 20008,
                    headers=AUTH)
    expect_rejected(client, seeded, emulator, "put", query_path(), 405, None, headers=AUTH)


def test_v2_has_no_bulk_endpoint(client, seeded, emulator):
    """On v2, ``bulk`` is just a transaction id: a list body is refused, not fulfilled as a bulk."""
    expect_rejected(client, seeded, emulator, "put", result_path(txn="bulk", version=2), 400, 20002, headers=AUTH,
                    json=[{"transactionId": "b-1", "items": [GOOD_ITEM]}])


# ---------------------------------------------------------------- odd but valid input is stored, not a 500
ODD_BUT_VALID = {
    "NUL in orderNo": {"orderNo": "a\u0000b"},
    "lone surrogate in orderNo": {"orderNo": "\ud800"},
    "NUL in metadata": {"metadata": {"k\u0000": "v\u0000"}},
    "emoji": {"orderNo": "\U0001F600", "region": "\u00e9"},
    "huge number in metadata": {"metadata": {"x": 10**300, "y": 1e308, "z": -0.0}},
    "metadata nested 15 deep": {"metadata": {"x": json.loads("[" * 15 + "]" * 15)}},
    "every optional field": {"source": "PROMOTION", "orderNo": "o-1", "startDate": "2026-01-01T00:00:00Z",
                             "endDate": "2026-02-01T00:00:00+01:00", "duration": 30, "origin": "Steam",
                             "entitlementOrigin": "System", "storeId": "s", "region": "EU", "language": "de",
                             "entitlementCollectionId": "c", "metadata": {}},
}


@pytest.mark.parametrize("extra", list(ODD_BUT_VALID.values()), ids=list(ODD_BUT_VALID))
def test_odd_but_valid_strings_are_stored(client, emulator, extra):
    response = put_order(client, [{**GOOD_ITEM, **extra}])
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["state"] == "FULFILLED"


def test_each_request_compares_every_stored_token_hash(two_games_app, emulator, monkeypatch):
    """Tokens are kept as SHA-256 hashes and every hash is compared (constant time), whichever matches."""
    import config.storefronts as storefronts_module
    storefronts = two_games_app.extensions["kraty_bridge"].storefronts
    stored = [h for h, _ in storefronts._hashes]
    assert len(stored) == 4 and all(len(h) == 32 for h in stored)
    calls = []
    real = storefronts_module.hmac.compare_digest

    def counting(a, b):
        calls.append(1)
        return real(a, b)
    monkeypatch.setattr(storefronts_module.hmac, "compare_digest", counting)
    client = two_games_app.test_client()
    for headers in (AUTH, OTHER_AUTH, BOTH_AUTH, {"Authorization": "Bearer wrong"}):
        calls.clear()
        client.get(query_path(), headers=headers)
        assert len(calls) == len(stored)
