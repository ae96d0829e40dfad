"""POST /webhooks/kraty: Standard Webhooks signatures made by the tests (and by the emulator), what each
request gets, and the "confirmed by Kraty" history entry."""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest
from standardwebhooks.webhooks import Webhook

from middleware.ledger import repository as repo

from tests.conftest import Served
from tests.support.orders_flow import drain, poll, put_order
from tests.support.accelbyte import make_app  # noqa: F401  (fixture)
from tests.support.kraty_webhooks import OLD_SECRET, SECRET, event, kraty_app, recorded, send  # noqa: F401  (fixture)


def test_signed_webhooks_are_recorded_once(kraty_app, services):
    client = kraty_app.test_client()
    body = event()
    first = send(client, body, msg_id="msg_1")
    again = send(client, body, msg_id="msg_1")
    assert first.status_code == again.status_code == 200
    assert (first.get_json()["duplicate"], again.get_json()["duplicate"]) == (False, True)
    assert send(client, event(), secret=OLD_SECRET).status_code == 200  # rotation: every live secret verifies
    assert recorded(services) == 2


def test_unknown_event_types_are_accepted(kraty_app, services):
    response = send(kraty_app.test_client(), event("lobby.exploded", {"anything": 1}))
    assert response.status_code == 200 and recorded(services) == 1


@pytest.mark.parametrize("case", ["wrong secret", "stale", "future", "missing signature", "missing id",
                                  "garbled signature", "tampered"])
def test_bad_signatures_are_401_and_record_nothing(kraty_app, services, case):
    client = kraty_app.test_client()
    body = event()
    if case == "wrong secret":
        response = send(client, body, secret="whsec_" + "d3JvbmctZ2FtZS1zZWNyZXQtMDAwMDAwMDAwMDA=")
    elif case == "stale":
        response = send(client, body, when=datetime.now(timezone.utc) - timedelta(minutes=6))
    elif case == "future":
        response = send(client, body, when=datetime.now(timezone.utc) + timedelta(minutes=6))
    elif case == "missing signature":
        response = send(client, body, headers={"webhook-signature": ""})
    elif case == "missing id":
        response = send(client, body, headers={"webhook-id": ""})
    elif case == "garbled signature":
        response = send(client, body, headers={"webhook-signature": "v1,@@@not-base64"})
    else:
        raw = json.dumps(body).encode()
        msg_id, when = "msg_t", datetime.now(timezone.utc)
        signature = Webhook(SECRET).sign(msg_id, when, raw.decode())
        response = client.post("/webhooks/kraty", data=raw.replace(b"player-1", b"player-2"),
                               headers={"webhook-id": msg_id, "webhook-timestamp": str(int(when.timestamp())),
                                        "webhook-signature": signature, "Content-Type": "application/json"})
    assert response.status_code == 401, response.get_json()
    assert response.get_json()["error"]["code"] == "invalid_signature"
    assert recorded(services) == 0


@pytest.mark.parametrize("raw, status", [(b"{not json", 400), (b"[1, 2]", 400), (b'{"type": "x"}', 400),
                                         (b'{"type": "wallet.changed", "gameId": "other", "data": {}}', 422)])
def test_malformed_bodies(kraty_app, services, raw, status):
    response = send(kraty_app.test_client(), raw)
    assert response.status_code == status and recorded(services) == 0


def test_without_secrets_the_endpoint_is_404(client):
    assert send(client, event()).status_code == 404


def test_kraty_confirms_what_the_bridge_granted(kraty_app, services, redis, emulator):
    client = kraty_app.test_client()
    assert put_order(client, [{"itemSku": "gems_100", "quantity": 1}], txn="txn-confirm").status_code == 200
    entry = emulator.ledger(sourceRefId="txn-confirm")[0]
    send(client, event("wallet.changed", {"externalPlayerId": "player-1", "currencyKey": "gems", "delta": 100,
                                          "balance": 100, "reason": "x", "sourceRefId": "txn-confirm",
                                          "ledgerEntryId": entry.get("id") or entry.get("ledgerEntryId")}))
    drain(redis)
    with services.session() as session:
        f = repo.load(session, repo.find(session, "demo", "accelbyte", "txn-confirm").id, history=True)
        notes = [h.detail for h in f.history if h.detail and "confirmed_by_kraty" in h.detail]
    assert notes and notes[0]["confirmed_by_kraty"] == "wallet.changed" and notes[0]["delta"] == 100


def test_end_to_end_emulator_webhook_reaches_the_bridge(kraty_app, services, redis, emulator):
    served = Served(kraty_app)
    try:
        emulator.session.put(f"{emulator.url}/_emulator/webhooks/config",
                             json={"url": f"{served.url}/webhooks/kraty", "secret": SECRET, "game": "demo"}
                             ).raise_for_status()
        client = kraty_app.test_client()
        assert put_order(client, [{"itemSku": "gems_100", "quantity": 2}], txn="txn-e2e").status_code == 200

        def confirmed():
            drain(redis)
            with services.session() as session:
                f = repo.load(session, repo.find(session, "demo", "accelbyte", "txn-e2e").id, history=True)
                return [h for h in f.history if h.detail and "confirmed_by_kraty" in h.detail]

        assert poll(confirmed, what="the emulator's wallet.changed to confirm the order")
    finally:
        emulator.session.put(f"{emulator.url}/_emulator/webhooks/config", json={"url": "", "secret": "", "game": "demo"})
        served.stop()
