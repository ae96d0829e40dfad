"""GET /v1/players/{id}: the bridge's orders beside Kraty's profile, totals; still useful when Kraty is down."""
from __future__ import annotations

from sqlalchemy import update

from middleware.ledger.models import Fulfilment

from tests.support.ops_ledger import GEMS, SWORD, failed_order, fulfilled_order, key


def _price(services, fulfilment_id, price, currency, **values):
    with services.session() as session:
        session.execute(update(Fulfilment).where(Fulfilment.id == fulfilment_id)
                        .values(price=price, currency=currency, **values))
        session.commit()


def test_orders_totals_and_kraty_profile(client, services, emulator):
    a = fulfilled_order(client, services, txn="p-1", items=[GEMS, SWORD])
    b = fulfilled_order(client, services, txn="p-2")
    c = failed_order(client, emulator, services, txn="p-3")
    d = fulfilled_order(client, services, txn="p-4")
    fulfilled_order(client, services, txn="p-other", user="player-2")
    _price(services, a, "4.99", "USD")
    _price(services, b, "0.02", "usd")
    _price(services, c, "1.00", "EUR")
    _price(services, d, "100.00", "USD", environment="sandbox")  # not paid money
    response = client.get("/v1/players/player-1?namespace=demo", headers=key(services, "viewer"))
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert [o["transactionId"] for o in body["orders"]] == ["p-4", "p-3", "p-2", "p-1"]
    assert body["totals"] == {"orders": 4, "byState": {"FULFILLED": 3, "FULFILL_FAILED": 1},
                              "paid": {"EUR": "1.00", "USD": "5.01"}}
    kraty = body["kraty"]
    assert kraty["available"] is True
    assert kraty["profile"]["summary"]["wallet"] == {"gems": 400}
    limited = client.get("/v1/players/player-1", query_string={"namespace": "demo", "limit": 1},
                         headers=key(services, "viewer")).get_json()
    assert [o["transactionId"] for o in limited["orders"]] == ["p-4"] and limited["totals"]["orders"] == 4
    # the only game: the namespace may be left out
    assert client.get("/v1/players/player-2", headers=key(services, "viewer")).get_json()["totals"]["orders"] == 1


def test_kraty_unreachable_or_erring_still_answers(client, services, emulator):
    fulfilled_order(client, services)
    viewer = key(services, "viewer")
    emulator.faults({"path": "/players/player-1$", "method": "GET", "status": 503})
    body = client.get("/v1/players/player-1?namespace=demo", headers=viewer).get_json()
    assert body["kraty"]["available"] is False and "503" in body["kraty"]["error"]
    assert body["totals"]["orders"] == 1 and len(body["orders"]) == 1
    emulator.faults({"path": "/players/player-1$", "method": "GET", "drop": True})
    dropped = client.get("/v1/players/player-1?namespace=demo", headers=viewer)
    assert dropped.status_code == 200 and dropped.get_json()["kraty"]["available"] is False
    emulator.clear_faults()
    unknown = client.get("/v1/players/nobody?namespace=demo", headers=viewer).get_json()
    assert unknown["orders"] == [] and unknown["totals"] == {"orders": 0, "byState": {}, "paid": {}}
    assert unknown["kraty"]["available"] is False and unknown["kraty"]["status"] == 404


def test_player_view_bad_input_and_keys(client, services):
    viewer = key(services, "viewer")
    for query in ({"namespace": "demo", "limit": 0}, {"namespace": "demo", "limit": 201}, {"colour": "red"},
                  {"namespace": "nope"}):
        response = client.get("/v1/players/player-1", query_string=query, headers=viewer)
        assert response.status_code == 422, query
        assert response.get_json()["error"]["code"] == "validation_failed"
    assert client.get("/v1/players/player-1?namespace=demo").status_code == 401
    assert client.get("/v1/players/player-1?namespace=demo", headers=key(services, "receipts")).status_code == 403
    elsewhere = key(services, "viewer", ["other-game"])
    assert client.get("/v1/players/player-1?namespace=demo", headers=elsewhere).status_code == 403
