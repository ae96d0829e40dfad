"""The v2 query: every filter, offset/limit, and paging links that work when followed."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlalchemy import text, update

from middleware.ledger.models import Fulfilment
from tests.support.orders_flow import AUTH, drain, put_order
from tests.support.accelbyte import kraty_call, query_path, result_path

INFO_KEYS = {"id", "namespace", "userId", "transactionId", "state", "stateInfo", "items",
             "createdAt", "updatedAt", "actions"}
BASE = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)


def set_created(services, txn, when: datetime):
    """Typed through the model, so SQLite stores it in the format the ORM writes."""
    with services.engine.begin() as connection:
        connection.execute(update(Fulfilment).where(Fulfilment.transaction_id == txn).values(created_at=when))


@pytest.fixture
def orders(client, emulator, services):
    """Five settled orders, one hour apart from BASE, in every state AccelByte knows; and a sixth, newest, still
    in progress (Kraty answered 503 once, a retry is scheduled), which the query does not list."""
    gems = [{"itemSku": "gems_100", "quantity": 1}]
    put_order(client, gems, user="p1", txn="t-fulfilled")
    put_order(client, [*gems, {"itemSku": "no_such", "quantity": 1}], user="p2", txn="t-failed")
    put_order(client, gems, user="p1", txn="t-revoked")
    client.put(result_path(user="p1", txn="t-revoked", action="revoke"), headers=AUTH)
    put_order(client, gems, user="p2", txn="t-revoke-failed")
    kraty_call(emulator, "/players/p2/wallet/gems/debit", {"amount": 150, "reason": "spent", "idempotencyKey": "s"})
    client.put(result_path(user="p2", txn="t-revoke-failed", action="revoke"), headers=AUTH)
    emulator.faults({"path": "/wallet/gems/credit", "status": 400, "count": 1})
    put_order(client, gems, user="p3", txn="t-refused")
    emulator.faults({"path": "/wallet/gems/credit", "status": 503, "count": 1})
    assert put_order(client, gems, user="p3", txn="t-in-progress").status_code == 503
    emulator.clear_faults()
    txns = ["t-fulfilled", "t-failed", "t-revoked", "t-revoke-failed", "t-refused"]
    for hours, txn in enumerate([*txns, "t-in-progress"]):
        set_created(services, txn, BASE + timedelta(hours=hours))
    return txns


def get(client, query="", **headers):
    response = client.get(query_path() + (f"?{query}" if query else ""), headers={**AUTH, **headers})
    assert response.status_code == 200, response.get_json()
    assert response.mimetype == "application/json"
    return response.get_json()


def txns(body) -> list[str]:
    return [row["transactionId"] for row in body["data"]]


def test_rows_are_fulfilment_infos_newest_first(client, orders):
    body = get(client)
    assert txns(body) == list(reversed(orders))
    assert body["paging"] == {}
    for row in body["data"]:
        assert set(row) == INFO_KEYS and row["namespace"] == "demo"
    states = {row["transactionId"]: row["state"] for row in body["data"]}
    assert states == {"t-fulfilled": "FULFILLED", "t-failed": "FULFILL_FAILED", "t-revoked": "REVOKED",
                      "t-revoke-failed": "REVOKE_FAILED", "t-refused": "FULFILL_FAILED"}
    failed = {row["transactionId"]: row["stateInfo"]["failedList"] for row in body["data"]}
    assert "does not exist" in failed["t-failed"][0]["error"]
    assert "400" in failed["t-refused"][0]["error"]
    revoked = next(row for row in body["data"] if row["transactionId"] == "t-revoked")
    assert revoked["createdAt"] == "2026-03-01T14:00:00.000Z"
    actions = revoked["actions"]
    assert [(a["action"], a["state"]) for a in actions] == [("FULFILLMENT", "FULFILLED"),
                                                           ("REVOKE_FULFILLMENT", "REVOKED")]
    assert actions[0]["fulfillmentHistoryId"] and actions[1]["revocationHistoryId"]
    assert revoked["items"][0]["itemSku"] == "gems_100"


def test_an_order_still_in_progress_is_listed_once_settled(client, orders, redis):
    """FULFILL_FAILED in the query is final: an order Kraty's outage left in progress is not listed (under no
    state) until its retries settle it."""
    for query in ("", "state=FULFILL_FAILED", "state=FULFILLED", "transactionId=t-in-progress", "userId=p3"):
        assert "t-in-progress" not in txns(get(client, query)), query
    drain(redis)
    assert txns(get(client, "state=FULFILLED&userId=p3")) == ["t-in-progress"]

@pytest.mark.parametrize("state, expected", [
    ("FULFILLED", ["t-fulfilled"]),
    ("FULFILL_FAILED", ["t-refused", "t-failed"]),
    ("REVOKED", ["t-revoked"]),
    ("REVOKE_FAILED", ["t-revoke-failed"]),
])
def test_filter_by_state(client, orders, state, expected):
    body = get(client, f"state={state}")
    assert txns(body) == expected
    assert {row["state"] for row in body["data"]} == {state}


def test_filter_by_user_and_transaction(client, orders):
    assert txns(get(client, "userId=p1")) == ["t-revoked", "t-fulfilled"]
    assert txns(get(client, "userId=p2&state=REVOKE_FAILED")) == ["t-revoke-failed"]
    assert txns(get(client, "userId=nobody")) == []
    assert txns(get(client, "transactionId=t-failed")) == ["t-failed"]
    assert txns(get(client, "transactionId=t-failed&userId=p1")) == []
    assert txns(get(client, "transactionId=T-FAILED")) == []
    assert txns(get(client, "transactionId=t-failed&state=FULFILLED")) == []


@pytest.mark.parametrize("query, expected", [
    ("startTime=2026-03-01T13:00:00Z", ["t-refused", "t-revoke-failed", "t-revoked", "t-failed"]),  # inclusive
    ("endTime=2026-03-01T13:00:00Z", ["t-fulfilled"]),                                                  # exclusive
    ("startTime=2026-03-01T13:00:00Z&endTime=2026-03-01T15:00:00Z", ["t-revoked", "t-failed"]),
    ("startTime=2026-03-01T13:00:00.000001Z&endTime=2026-03-01T15:00:00.000001Z", ["t-revoke-failed", "t-revoked"]),
    # the same instants written in other zones
    ("startTime=2026-03-01T18:00:00%2B05:00&endTime=2026-03-01T10:00:00-05:00", ["t-revoked", "t-failed"]),
    ("startTime=2026-03-01T18:00:00+05:00&endTime=2026-03-01T10:00:00-05:00", ["t-revoked", "t-failed"]),
    ("startTime=2026-03-01T13:00:00.000%2B00:00&endTime=2026-03-01T15:00:00.000000Z", ["t-revoked", "t-failed"]),
    ("startTime=2026-02-01T00:00:00Z&endTime=2026-02-02T00:00:00Z", []),
    ("startTime=2026-03-01T12:00:00Z&state=FULFILL_FAILED&userId=p2", ["t-failed"]),
])
def test_filter_by_time(client, orders, query, expected):
    assert txns(get(client, query)) == expected


def test_offset_and_limit(client, orders):
    newest_first = list(reversed(orders))
    assert txns(get(client, "limit=2")) == newest_first[:2]
    assert txns(get(client, "limit=2&offset=2")) == newest_first[2:4]
    assert txns(get(client, "offset=4")) == newest_first[4:]
    assert txns(get(client, "offset=5")) == []
    assert txns(get(client, "offset=1000000")) == []
    assert txns(get(client, "limit=100")) == newest_first
    assert txns(get(client, "limit=1&offset=0")) == newest_first[:1]


def follow(client, url):
    assert url.startswith("http://") and "/platform/v2/admin/namespaces/demo/fulfillments?" in url
    response = client.get(url, headers=AUTH)
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def test_paging_links_work_when_followed(client, orders):
    newest_first = list(reversed(orders))
    page = get(client, "limit=2")
    assert "previous" not in page["paging"]
    seen = txns(page)
    pages = [page]
    while "next" in page["paging"]:
        page = follow(client, page["paging"]["next"])
        pages.append(page)
        seen += txns(page)
    assert seen == newest_first and len(pages) == 3
    assert "next" not in pages[-1]["paging"]
    # and back
    back = follow(client, pages[-1]["paging"]["previous"])
    assert txns(back) == txns(pages[1])
    back = follow(client, back["paging"]["previous"])
    assert txns(back) == txns(pages[0]) and "previous" not in back["paging"]


def test_paging_links_keep_the_filters(client, orders):
    page = get(client, "limit=1&state=FULFILL_FAILED&startTime=2026-03-01T12:00:00%2B00:00")
    assert txns(page) == ["t-refused"]
    query = parse_qs(urlsplit(page["paging"]["next"]).query)
    assert query["state"] == ["FULFILL_FAILED"] and query["limit"] == ["1"] and query["offset"] == ["1"]
    assert query["startTime"] == ["2026-03-01T12:00:00+00:00"]
    page = follow(client, page["paging"]["next"])
    assert txns(page) == ["t-failed"] and "next" not in page["paging"]


def test_previous_from_an_offset_that_is_not_a_page_boundary(client, orders):
    page = get(client, "limit=2&offset=1")
    back = follow(client, page["paging"]["previous"])
    assert txns(back) == list(reversed(orders))[:2]


@pytest.mark.parametrize("headers, data", [
    ({"Content-Type": "application/octet-stream"}, None),
    ({"Content-Type": "application/octet-stream"}, b""),
    ({"Content-Type": "application/json"}, None),
    ({}, None),
], ids=["octet-stream", "octet-stream empty body", "json", "none"])
def test_query_accepts_any_content_type(client, orders, headers, data):
    response = client.get(query_path(), headers={**AUTH, **headers}, data=data)
    assert response.status_code == 200
    assert len(response.get_json()["data"]) == 5


def test_query_shows_only_this_namespace_and_source(client, orders, services):
    with services.engine.begin() as connection:
        connection.execute(text("UPDATE fulfilments SET source = 'google_play' WHERE transaction_id = 't-failed'"))
    assert "t-failed" not in txns(get(client))


def test_default_limit_is_twenty(client, emulator):
    entries = [{"transactionId": f"b-{i:02d}", "items": [{"itemSku": "gems_100", "quantity": 1}]} for i in range(25)]
    assert client.put(result_path(txn="bulk", version=3), json=entries, headers=AUTH).status_code == 200
    page = get(client)
    assert len(page["data"]) == 20 and "next" in page["paging"]
    rest = follow(client, page["paging"]["next"])
    assert len(rest["data"]) == 5 and "next" not in rest["paging"]
    assert {r["transactionId"] for r in page["data"] + rest["data"]} == {e["transactionId"] for e in entries}
