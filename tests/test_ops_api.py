"""GET /v1/fulfilments (filters, keyset cursors), GET /v1/fulfilments/{id}, GET /v1/audit — and every bad input."""
from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from middleware.api import cursors
from middleware.api.fulfilment_schemas import FulfilmentPage, FulfilmentSummary
from middleware.ledger.models import (
    Delivery,
    Fulfilment,
    FulfilmentItem,
    InboundEvent,
    OutboundEvent,
    utcnow,
)
from middleware.ops.base import REDACTED, redact

from tests.support.orders_flow import put_order
from tests.support.ops_ledger import (
    GEMS,
    SWORD,
    failed_order,
    fulfilled_order,
    key,
    order_id,
    set_created_at,
)

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


def _orders(client, services, emulator) -> list[str]:
    """Five orders, created an hour apart (t-0 oldest): t-2 failed, t-3 a sword for player-2."""
    ids = [fulfilled_order(client, services, txn="t-0"), fulfilled_order(client, services, txn="t-1")]
    ids.append(failed_order(client, emulator, services, txn="t-2"))
    ids.append(fulfilled_order(client, services, txn="t-3", user="player-2", items=[SWORD]))
    ids.append(fulfilled_order(client, services, txn="t-4"))
    for n, fulfilment_id in enumerate(ids):
        set_created_at(services, T0 + timedelta(hours=n), fulfilment_id)
    return ids


def _txns(response) -> list[str]:
    assert response.status_code == 200, response.get_json()
    return [row["transactionId"] for row in response.get_json()["items"]]


def test_list_newest_first_with_each_filter(client, services, emulator):
    _orders(client, services, emulator)
    viewer = key(services, "viewer")
    get = lambda **q: client.get("/v1/fulfilments", query_string=q, headers=viewer)
    assert _txns(get()) == ["t-4", "t-3", "t-2", "t-1", "t-0"]
    assert _txns(get(state="FULFILL_FAILED")) == ["t-2"]
    assert _txns(get(playerId="player-2")) == ["t-3"]
    assert _txns(get(transactionId="t-1")) == ["t-1"]
    assert _txns(get(sku="sword")) == ["t-3", "t-2"]
    assert _txns(get(source="accelbyte", namespace="demo", environment="production")) == \
        ["t-4", "t-3", "t-2", "t-1", "t-0"]
    assert _txns(get(source="stripe")) == []
    assert _txns(get(environment="sandbox")) == []
    assert _txns(get(createdAfter="2026-11-01T13:00:00Z", createdBefore="2026-11-01T15:00:00Z")) == ["t-2", "t-1"]
    assert _txns(get(createdAfter="2026-11-01T14:00:00+01:00")) == ["t-4", "t-3", "t-2", "t-1"]
    assert _txns(get(sku="sword", state="FULFILLED", playerId="player-2")) == ["t-3"]
    row = get(transactionId="t-3").get_json()["items"][0]
    assert row["playerId"] == "player-2" and row["state"] == "FULFILLED" and row["createdAt"] == "2026-11-01T15:00:00Z"


def test_keyset_pages_cover_everything_once(client, services, emulator):
    _orders(client, services, emulator)
    viewer = key(services, "viewer")
    seen, cursor = [], None
    for _ in range(5):
        query = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = client.get("/v1/fulfilments", query_string=query, headers=viewer).get_json()
        seen += [row["transactionId"] for row in page["items"]]
        cursor = page["nextCursor"]
        if cursor is None:
            break
    assert seen == ["t-4", "t-3", "t-2", "t-1", "t-0"]
    # same created_at: the id breaks the tie, still each row once
    set_created_at(services, T0)
    one = client.get("/v1/fulfilments", query_string={"limit": 3}, headers=viewer).get_json()
    two = client.get("/v1/fulfilments", query_string={"limit": 3, "cursor": one["nextCursor"]},
                     headers=viewer).get_json()
    assert two["nextCursor"] is None
    both = [r["id"] for r in one["items"] + two["items"]]
    assert len(set(both)) == 5 and both == sorted(both, reverse=True)


STARTER = {"itemSku": "starter_pack", "quantity": 1}   # a bundle: three item rows naming starter_pack


def _sku_orders(client, services, emulator) -> dict[str, str]:
    """Orders an hour apart (t-0 oldest), bundles among them: t-1 starter_pack; t-2 starter_pack FULFILL_FAILED
    (its sword refused); t-3 two starter_pack lines and gems for player-2 (seven rows, six naming
    starter_pack); t-4 gems for player-2; and, written straight to the ledger, a starter_pack order of another
    game at 14:30 whose item rows are given no created_at."""
    ids = {"t-0": fulfilled_order(client, services, txn="t-0"),
           "t-1": fulfilled_order(client, services, txn="t-1", items=[STARTER])}
    emulator.faults({"path": "/inventory/sword/grant", "status": 400, "code": "validation_failed", "message": "no"})
    assert put_order(client, [STARTER], txn="t-2").get_json()["state"] == "FULFILL_FAILED"
    emulator.clear_faults()
    ids["t-2"] = order_id(services, "t-2")
    ids["t-3"] = fulfilled_order(client, services, txn="t-3", user="player-2", items=[STARTER, STARTER, GEMS])
    ids["t-4"] = fulfilled_order(client, services, txn="t-4", user="player-2")
    with services.session() as session:
        other = Fulfilment(namespace="other-game", source="accelbyte", transaction_id="o-1", player_id="player-1",
                           state="FULFILLED", request_hash="h", lines=[STARTER],
                           items=[FulfilmentItem(line_no=0, component_no=n, sku="starter_pack", line_quantity=1,
                                                 component_quantity=1, amount=1, state="GRANTED")
                                  for n in range(3)])
        session.add(other)
        session.commit()
        ids["o-1"] = other.id
        # every row holds its order's created_at, however it was written
        pairs = session.execute(select(FulfilmentItem.order_created_at, Fulfilment.created_at)
                                .join(Fulfilment, Fulfilment.id == FulfilmentItem.fulfilment_id)).all()
    assert len(pairs) == 1 + 3 + 3 + 7 + 1 + 3 and all(mine == theirs for mine, theirs in pairs)
    for n in range(5):
        set_created_at(services, T0 + timedelta(hours=n), ids[f"t-{n}"])
    set_created_at(services, T0 + timedelta(hours=2, minutes=30), ids["o-1"])
    return ids


def test_sku_filter_combined_with_the_other_filters(client, services, emulator):
    _sku_orders(client, services, emulator)
    viewer, demo_only = key(services, "viewer"), key(services, "viewer", ["demo"])
    get = lambda headers=viewer, **q: client.get("/v1/fulfilments", query_string=q, headers=headers)
    assert _txns(get(sku="starter_pack")) == ["t-3", "o-1", "t-2", "t-1"]   # each order once
    assert _txns(get(sku="gems_100")) == ["t-4", "t-3", "t-0"]               # a bundle's gems are not the SKU
    assert _txns(get(sku="sword")) == []
    assert _txns(get(sku="starter_pack", namespace="demo")) == ["t-3", "t-2", "t-1"]
    assert _txns(get(demo_only, sku="starter_pack")) == ["t-3", "t-2", "t-1"]
    assert _txns(get(sku="starter_pack", state="FULFILL_FAILED")) == ["t-2"]
    assert _txns(get(sku="starter_pack", state="FULFILLED")) == ["t-3", "o-1", "t-1"]
    assert _txns(get(sku="starter_pack", playerId="player-2")) == ["t-3"]
    assert _txns(get(sku="gems_100", playerId="player-1")) == ["t-0"]
    assert _txns(get(sku="starter_pack", transactionId="t-2")) == ["t-2"]
    assert _txns(get(sku="starter_pack", transactionId="t-4")) == []
    assert _txns(get(sku="starter_pack", source="accelbyte", environment="production")) == \
        ["t-3", "o-1", "t-2", "t-1"]
    assert _txns(get(sku="starter_pack", source="stripe")) == []
    assert _txns(get(sku="starter_pack", environment="sandbox")) == []
    # the time range: createdAfter inclusive, createdBefore exclusive
    assert _txns(get(sku="starter_pack", createdAfter="2026-11-01T13:00:00Z",
                     createdBefore="2026-11-01T15:00:00Z")) == ["o-1", "t-2", "t-1"]
    assert _txns(get(sku="starter_pack", createdAfter="2026-11-01T14:30:00Z")) == ["t-3", "o-1"]
    assert _txns(get(sku="starter_pack", createdBefore="2026-11-01T14:30:00Z")) == ["t-2", "t-1"]
    assert _txns(get(sku="starter_pack", namespace="demo", state="FULFILLED", playerId="player-1",
                     createdAfter="2026-11-01T12:00:00Z", createdBefore="2026-11-01T16:00:00Z")) == ["t-1"]
    assert _txns(get(sku="gems_100", createdAfter="2026-11-01T15:00:00+01:00")) == ["t-4", "t-3"]  # 14:00Z


def _pages(client, headers: dict, limit: int, **query) -> list[list[str]]:
    pages, cursor = [], None
    for _ in range(20):
        page = client.get("/v1/fulfilments", query_string={**query, "limit": limit, **({"cursor": cursor} if cursor
                                                                                          else {})}, headers=headers)
        assert page.status_code == 200, page.get_json()
        pages.append([row["id"] for row in page.get_json()["items"]])
        cursor = page.get_json()["nextCursor"]
        if cursor is None:
            return pages
    raise AssertionError("no last page")


def test_sku_pages_cover_each_order_once_across_bundle_rows(client, services, emulator):
    ids = _sku_orders(client, services, emulator)
    viewer = key(services, "viewer")
    newest_first = [ids[t] for t in ("t-3", "o-1", "t-2", "t-1")]
    for limit in (1, 2, 3):
        pages = _pages(client, viewer, limit, sku="starter_pack")
        assert [i for page in pages for i in page] == newest_first, limit
        assert all(len(page) == limit for page in pages[:-1])
    pages = _pages(client, viewer, 1, sku="starter_pack", namespace="demo", state="FULFILLED")
    assert pages == [[ids["t-3"]], [ids["t-1"]]]
    pages = _pages(client, viewer, 1, sku="starter_pack", playerId="player-1")   # the player's orders walked
    assert pages == [[ids["o-1"]], [ids["t-2"]], [ids["t-1"]]]
    # all at the same instant: the id breaks the tie, still each order once, none left out
    set_created_at(services, T0)
    for limit in (1, 2):
        seen = [i for page in _pages(client, viewer, limit, sku="starter_pack") for i in page]
        assert seen == sorted(newest_first, reverse=True), limit
    seen = [i for page in _pages(client, viewer, 2, sku="gems_100") for i in page]
    assert seen == sorted([ids["t-0"], ids["t-3"], ids["t-4"]], reverse=True)


def _forge(cursor: str, change) -> str:
    body, _, mac = cursor.partition(".")
    payload = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    change(payload)
    forged = base64.urlsafe_b64encode(json.dumps(payload, separators=(",", ":")).encode()).rstrip(b"=").decode()
    return f"{forged}.{mac}"


def test_bad_cursors_are_400_invalid_cursor(client, services, emulator):
    _orders(client, services, emulator)
    viewer = key(services, "viewer")
    cursor = client.get("/v1/fulfilments?limit=2", headers=viewer).get_json()["nextCursor"]
    secret = cursors.secrets_from(services)[0]
    bad = {
        "garbage": "not-a-cursor",
        "no mac": cursor.split(".")[0],
        "bad base64": "!!!." + cursor.split(".")[1],
        "tampered": _forge(cursor, lambda p: p["a"].__setitem__(1, "f" * 32)),
        "other list": cursors.encode(secret, "audit", {}, [1]),
        "wrong secret": cursors.encode(b"x" * 32, "fulfilments", {}, ["2026-11-01T12:00:00+00:00", "a"]),
        "signed but not a key": cursors.encode(secret, "fulfilments",
                                               {"namespace": None}, ["yesterday", "a"]),
    }
    for name, value in bad.items():
        response = client.get("/v1/fulfilments", query_string={"limit": 2, "cursor": value}, headers=viewer)
        assert response.status_code == 400, name
        assert response.get_json()["error"]["code"] == "invalid_cursor", name
        assert response.get_json()["error"]["requestId"]
    # a good cursor with other filters than its first page
    other = client.get("/v1/fulfilments", query_string={"limit": 2, "cursor": cursor, "state": "FULFILLED"},
                       headers=viewer)
    assert other.status_code == 400 and "other filters" in other.get_json()["error"]["message"]
    assert client.get("/v1/fulfilments", query_string={"limit": 2, "cursor": cursor}, headers=viewer).status_code == 200


@pytest.mark.parametrize("query, field", [
    ({"colour": "red"}, "colour"),
    ({"state": "ALMOST"}, "state"),
    ({"source": "ebay"}, "source"),
    ({"environment": "staging"}, "environment"),
    ({"limit": "0"}, "limit"),
    ({"limit": "201"}, "limit"),
    ({"limit": "ten"}, "limit"),
    ({"createdAfter": "yesterday"}, "createdAfter"),
    ({"createdAfter": "2026-11-01T12:00:00"}, "createdAfter"),   # no timezone
    ({"createdBefore": "2026-13-01T00:00:00Z"}, "createdBefore"),
    ({"createdAfter": "2026-11-02T00:00:00Z", "createdBefore": "2026-11-01T00:00:00Z"}, "createdAfter"),
    ({"createdAfter": "2026-11-01T00:00:00Z", "createdBefore": "2026-11-01T00:00:00Z"}, "createdAfter"),
    ({"playerId": "has space"}, "playerId"),
    ({"namespace": "nope"}, "namespace"),
])
def test_unknown_filters_and_bad_values_are_422_naming_them(client, services, query, field):
    response = client.get("/v1/fulfilments", query_string=query, headers=key(services, "viewer"))
    assert response.status_code == 422, response.get_json()
    error = response.get_json()["error"]
    assert error["code"] == "validation_failed" and error["requestId"]
    assert field in json.dumps(error["details"]["fields"])


def test_keys_missing_wrong_weak_and_namespace_limited(client, services, emulator):
    fulfilment_id = fulfilled_order(client, services)
    paths = ["/v1/fulfilments", f"/v1/fulfilments/{fulfilment_id}", "/v1/audit"]
    for path in paths:
        assert client.get(path).status_code == 401
        wrong = client.get(path, headers={"Authorization": "Bearer kb_not-a-key"})
        assert wrong.status_code == 401 and wrong.get_json()["error"]["code"] == "unauthenticated"
        weak = client.get(path, headers=key(services, "receipts"))
        assert weak.status_code == 403 and weak.get_json()["error"]["code"] == "forbidden"
    elsewhere = key(services, "viewer", ["other-game"])
    assert client.get("/v1/fulfilments", headers=elsewhere).get_json()["items"] == []
    assert client.get(f"/v1/fulfilments/{fulfilment_id}", headers=elsewhere).status_code == 404
    assert client.get("/v1/fulfilments?namespace=demo", headers=elsewhere).status_code == 403
    mine = key(services, "viewer", ["demo"])
    assert [r["id"] for r in client.get("/v1/fulfilments", headers=mine).get_json()["items"]] == [fulfilment_id]
    assert client.get(f"/v1/fulfilments/{fulfilment_id}", headers=mine).status_code == 200


def test_detail_has_items_history_events_redacted_webhooks_and_deliveries(client, services, emulator):
    fulfilment_id = failed_order(client, emulator, services, txn="t-detail")
    viewer = key(services, "viewer")
    with services.session() as session:  # what a store, Kraty and a sink left about the order
        session.add(InboundEvent(source="stripe", provider_event_id="evt_1", namespace="demo", received_at=utcnow(),
                                 content_type="application/json", outcome="processed", fulfilment_id=fulfilment_id,
                                 raw_body=json.dumps({"id": "evt_1", "data": {"client_secret": "pi_1_secret_x",
                                                                              "amount": 100},
                                                      "headers": {"Stripe-Signature": "t=1,v1=abc",
                                                                  "Authorization": "Bearer sk_live_123"},
                                                      "note": "Bearer abc.def"}).encode()))
        session.add(InboundEvent(source="google_play", provider_event_id="m-1", namespace="demo", received_at=utcnow(),
                                 content_type="text/plain", fulfilment_id=fulfilment_id, raw_body=b"\xff\x00binary"))
        session.add(InboundEvent(source="kraty", provider_event_id="msg_1", namespace="demo", received_at=utcnow(),
                                 content_type="application/json", outcome="processed", fulfilment_id=fulfilment_id,
                                 raw_body=json.dumps({"type": "wallet.changed",
                                                      "data": {"sourceRefId": "t-detail"}}).encode()))
        session.add(OutboundEvent(id="evt_out_1", type="purchase.failed", namespace="demo", player_id="player-1",
                                  occurred_at=utcnow(), payload={}, fulfilment_id=fulfilment_id))
        session.flush()
        session.add(Delivery(event_id="evt_out_1", sink="crm", state="dead", attempts=8, last_status=500))
        session.commit()
    response = client.get(f"/v1/fulfilments/{fulfilment_id}", headers=viewer)
    assert response.status_code == 200
    body = response.get_json()
    assert body["id"] == fulfilment_id and body["state"] == "FULFILL_FAILED" and body["transactionId"] == "t-detail"
    items = {i["sku"]: i for i in body["items"]}
    assert items["gems_100"]["state"] == "GRANTED" and items["gems_100"]["kratyLedgerEntryId"]
    assert items["sword"]["state"] == "FAILED" and "validation_failed" in items["sword"]["error"]
    assert [h["to"] for h in body["history"] if h["to"] != h["from"]][-2:] == ["FULFILLING", "FULFILL_FAILED"]
    by_source = {e["source"]: e for e in body["inboundEvents"]}
    assert set(by_source) == {"accelbyte", "stripe", "google_play"}
    assert by_source["accelbyte"]["body"] == {"items": [GEMS, SWORD]}
    stripe = by_source["stripe"]["body"]
    assert stripe["data"] == {"client_secret": REDACTED, "amount": 100}
    assert stripe["headers"] == {"Stripe-Signature": REDACTED, "Authorization": REDACTED}
    assert stripe["note"] == REDACTED
    assert by_source["google_play"]["body"] is None and "not JSON" in by_source["google_play"]["bodyNote"]
    assert [e["providerEventId"] for e in body["kratyWebhooks"]] == ["msg_1"]
    [sent] = body["sinkEvents"]
    assert sent["eventId"] == "evt_out_1" and sent["deliveries"][0]["state"] == "dead"
    assert "secret_x" not in response.get_data(as_text=True) and "sk_live" not in response.get_data(as_text=True)


def test_unknown_order_is_404_not_found(client, services):
    response = client.get("/v1/fulfilments/0123456789abcdef", headers=key(services, "viewer"))
    assert response.status_code == 404 and response.get_json()["error"]["code"] == "not_found"
    assert client.get("/v1/fulfilments/" + "x" * 300, headers=key(services, "viewer")).status_code == 404


def test_redact_hides_credentials_and_keeps_the_rest():
    value = {"Authorization": "Bearer abc", "webhook-signature": "v1,xyz", "purchaseToken": "tok",
             "nested": [{"api_key": "k", "apiKey": "k", "password": "p", "client_secret": "s", "amount": 5}],
             "idempotencyKey": "k-1", "text": "Basic dXNlcjpwYXNz", "stripe": "sk_test_abc", "whsec": "whsec_abc",
             "ours": "kb_" + "a" * 43, "plain": "hello", "token": None, "n": 3}
    assert redact(value) == {
        "Authorization": REDACTED, "webhook-signature": REDACTED, "purchaseToken": REDACTED,
        "nested": [{"api_key": REDACTED, "apiKey": REDACTED, "password": REDACTED, "client_secret": REDACTED,
                    "amount": 5}],
        "idempotencyKey": "k-1", "text": REDACTED, "stripe": REDACTED, "whsec": REDACTED, "ours": REDACTED,
        "plain": "hello", "token": None, "n": 3}
    assert redact([1, "x", None]) == [1, "x", None]


def test_audit_lists_filters_and_pages(client, services, emulator):
    operator = key(services, "operator")
    ids = [failed_order(client, emulator, services, txn=f"t-a{n}") for n in range(3)]
    for fulfilment_id in ids:
        response = client.post(f"/v1/fulfilments/{fulfilment_id}/actions/retry", json={"reason": "ticket 1"},
                               headers=operator)
        assert response.status_code == 200, response.get_json()
    viewer = key(services, "viewer")
    page = client.get("/v1/audit?limit=2", headers=viewer).get_json()
    assert [e["targetId"] for e in page["items"]] == [ids[2], ids[1]]
    rest = client.get("/v1/audit", query_string={"limit": 2, "cursor": page["nextCursor"]}, headers=viewer).get_json()
    assert [e["targetId"] for e in rest["items"]] == [ids[0]] and rest["nextCursor"] is None
    entry = page["items"][0]
    assert entry["action"] == "retry" and entry["role"] == "operator" and entry["actor"].startswith("key:operator-")
    assert entry["reason"] == "ticket 1" and entry["before"]["state"] == "FULFILL_FAILED"
    assert entry["after"]["state"] == "FULFILLED" and entry["namespace"] == "demo"
    only = client.get("/v1/audit", query_string={"targetType": "fulfilment", "targetId": ids[1]}, headers=viewer)
    assert [e["targetId"] for e in only.get_json()["items"]] == [ids[1]]
    assert client.get("/v1/audit?action=resolve", headers=viewer).get_json()["items"] == []
    actor = entry["actor"]
    assert len(client.get("/v1/audit", query_string={"actor": actor}, headers=viewer).get_json()["items"]) == 3
    future = (utcnow() + timedelta(hours=1)).isoformat()
    assert client.get("/v1/audit", query_string={"after": future}, headers=viewer).get_json()["items"] == []
    assert client.get("/v1/audit", headers=key(services, "viewer", ["other-game"])).get_json()["items"] == []
    for bad in ({"after": "2026-11-02T00:00:00Z", "before": "2026-11-01T00:00:00Z"}, {"after": "soon"},
                {"limit": 500}, {"who": "me"}, {"targetType": "planet"}):
        assert client.get("/v1/audit", query_string=bad, headers=viewer).status_code == 422, bad
    forged = _forge(page["nextCursor"], lambda p: p.__setitem__("a", [10**6]))
    bad_cursor = client.get("/v1/audit", query_string={"limit": 2, "cursor": forged}, headers=viewer)
    assert bad_cursor.status_code == 400 and bad_cursor.get_json()["error"]["code"] == "invalid_cursor"
    fulfilment_cursor = client.get("/v1/fulfilments?limit=1", headers=viewer).get_json()["nextCursor"]
    assert client.get("/v1/audit", query_string={"cursor": fulfilment_cursor}, headers=viewer).status_code == 400


def test_openapi_describes_the_ops_endpoints(client):
    spec = client.get("/openapi.json").get_json()
    for path in ("/v1/fulfilments", "/v1/fulfilments/{fulfilment_id}", "/v1/audit", "/v1/players/{player_id}",
                 "/v1/fulfilments/{fulfilment_id}/actions/make-good"):
        assert path in spec["paths"], path


def test_put_order_helper_still_fulfils(client):
    assert put_order(client, [GEMS], txn="t-sanity").get_json()["state"] == "FULFILLED"


def test_order_id_helper(client, services):
    fulfilled_order(client, services, txn="t-x")
    assert len(order_id(services, "t-x")) == 32


def test_a_common_sku_with_another_filter_walks_the_orders_and_finds_the_same_page(client, services, emulator,
                                                                                    monkeypatch):
    """PostgreSQL's statistics tell a common SKU from a rare one; either way of paging answers the same orders."""
    from sqlalchemy import text

    from middleware import ops
    for n in range(12):
        fulfilled_order(client, services, txn=f"t-common-{n}", items=[{"itemSku": "gems_100", "quantity": 1}])
    fulfilled_order(client, services, txn="t-rare", items=[{"itemSku": "starter_pack", "quantity": 1}])
    headers = key(services, "viewer")
    path = "/v1/fulfilments?sku=gems_100&namespace=demo&state=FULFILLED&limit=5"
    with services.session() as session:
        if session.get_bind().dialect.name != "postgresql":
            pytest.skip("the statistics are PostgreSQL's")
        session.execute(text("ANALYZE fulfilment_items"))
        session.commit()
        ops.queries._SKU_SHARES.clear()
        assert ops.sku_is_common(session, "gems_100") and not ops.sku_is_common(session, "nope")

    def pages(url):
        seen, cursor = [], None
        while True:
            page = client.get(url + (f"&cursor={cursor}" if cursor else ""), headers=headers).json
            seen += [row["transactionId"] for row in page["items"]]
            if not (cursor := page["nextCursor"]):
                return seen

    walked = pages(path)
    monkeypatch.setattr(ops, "sku_is_common", lambda session, sku: False)   # the item rows' index instead
    assert pages(path) == walked and sorted(walked) == sorted(f"t-common-{n}" for n in range(12))


def test_a_page_is_answered_in_its_schemas_shape(client, services, emulator):
    """The list answers ops.summary's rows as they are (no marshmallow dump per request): they must be exactly what
    dumping them with FulfilmentPage would give."""
    _orders(client, services, emulator)
    body = client.get("/v1/fulfilments", query_string={"limit": 2}, headers=key(services, "viewer")).get_json()
    assert body["nextCursor"] and len(body["items"]) == 2
    assert FulfilmentPage().dump(body) == body
    assert all(set(row) == set(FulfilmentSummary._declared_fields) for row in body["items"])
