from tests.helpers import AUTH, drain, put_order


def test_fulfil_coins(client, emulator):
    r = put_order(client, [{"itemSku": "gems_100", "quantity": 2}])
    assert r.status_code == 200, r.get_json()
    body = r.get_json()
    assert body["state"] == "FULFILLED"
    print(body)
    entries = emulator.ledger(player="player-1")
    print(entries)
