"""Apple's refund requests: a CONSUMPTION_REQUEST is answered with the consumption information computed
from the ledger and Kraty, sent to the App Store Server API fake (emulator/app_store_api.py), retried
when Apple is unavailable, noted in the order's history (ops API order detail) and off per game."""
from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from config.catalog import CatalogError, load_catalog
from middleware.orders.reconciler import reconcile_now

from tests.support.app_store_api import apple_api, apple_api_url, make_apple, player, signed  # noqa: F401  (fixtures)
from tests.support.app_store import make_app, write_catalog  # noqa: F401  (fixture)
from tests.support.apple_ca import notification, now_ms, sign_jws, transaction
from tests.support.orders_flow import drain
from tests.test_console import SECRET, sign_in


def refund_request(txid: str, who: str, reason: str = "UNINTENDED_PURCHASE", **fields) -> str:
    """A CONSUMPTION_REQUEST as Apple sends it: data carries consumptionRequestReason."""
    tx = transaction(transaction_id=txid, app_account_token=who)
    payload = notification("CONSUMPTION_REQUEST", signed_transaction=sign_jws(tx), **fields)
    payload["data"]["consumptionRequestReason"] = reason
    return sign_jws(payload)


def bought(a, apple_api, redis, txid: str, who: str) -> None:
    purchase = signed("ONE_TIME_CHARGE", txid, who)
    apple_api.sent(purchase, delivered=True)
    assert a.client.post("/webhooks/app-store", json={"signedPayload": purchase}).status_code == 200
    drain(redis)


def spend(a, who: str, gems: int) -> None:
    a.services.kraty("demo").debit(who, "gems", gems, reason="shop", source_ref="shop-1", key=str(uuid.uuid4()))


def history(a, txid: str) -> list[dict]:
    key = a.make_key(f"support-{uuid.uuid4()}", "viewer")
    orders = a.client.get(f"/v1/fulfilments?transactionId={txid}", headers={"Authorization": f"Bearer {key}"})
    order_id = orders.get_json()["items"][0]["id"]
    detail = a.client.get(f"/v1/fulfilments/{order_id}", headers={"Authorization": f"Bearer {key}"}).get_json()
    return [{**h["detail"], "order": order_id} for h in detail["history"]
            if (h["detail"] or {}).get("event") == "consumption_request"]


def ask(a, redis, txid: str, who: str) -> dict:
    response = a.client.post("/webhooks/app-store", json={"signedPayload": refund_request(txid, who)})
    assert response.status_code == 200 and response.get_json()["outcome"] == "pending"
    drain(redis)
    return response.get_json()


def test_a_refund_request_is_answered_from_the_ledger_and_kraty(make_app, catalog_path, tmp_path, apple_api,
                                                                redis, emulator):
    a = make_apple(make_app, catalog_path, tmp_path, apple_api, settings={"secret_key": SECRET},
                   refund_preference='"GRANT_PRORATED"')
    who = player()
    bought(a, apple_api, redis, "2000000000000401", who)
    spend(a, who, 60)  # of the 100 gems bought, 40 are left
    ask(a, redis, "2000000000000401", who)
    sent = apple_api.consumption()
    assert sent == [{"environment": "Sandbox", "transactionId": "2000000000000401", "body": {
        "customerConsented": True, "sampleContentProvided": False, "deliveryStatus": "DELIVERED",
        "consumptionPercentage": 60000, "refundPreference": "GRANT_PRORATED"}}]
    notes = history(a, "2000000000000401")
    assert len(notes) == 1 and notes[0]["sent"] is True and notes[0]["reason"] == "UNINTENDED_PURCHASE"
    assert notes[0]["consumption"]["consumptionPercentage"] == 60000
    sign_in(a.client, a.services, "viewer")  # the console's order timeline shows it too
    page = a.client.get(f"/console/orders/{notes[0]['order']}").get_data(as_text=True)
    assert "app_store:consumption" in page and "UNINTENDED_PURCHASE" in page and "60000" in page


def test_nothing_consumed_sends_no_prorated_preference(make_app, catalog_path, tmp_path, apple_api, redis, emulator):
    a = make_apple(make_app, catalog_path, tmp_path, apple_api, refund_preference='"GRANT_PRORATED"')
    who = player()
    bought(a, apple_api, redis, "2000000000000402", who)
    ask(a, redis, "2000000000000402", who)
    body = apple_api.consumption()[0]["body"]
    assert body["consumptionPercentage"] == 0 and "refundPreference" not in body  # Apple refuses it without > 0


def test_an_undelivered_purchase_says_so(make_app, catalog_path, tmp_path, apple_api, redis, emulator):
    a = make_apple(make_app, catalog_path, tmp_path, apple_api, refund_preference='"GRANT_FULL"')
    emulator.faults({"path": "/credit", "status": 400, "code": "validation_failed"})
    who = player()
    bought(a, apple_api, redis, "2000000000000403", who)
    ask(a, redis, "2000000000000403", who)
    assert apple_api.consumption()[0]["body"] == {"customerConsented": True, "sampleContentProvided": False,
                                                  "deliveryStatus": "UNDELIVERED_OTHER", "refundPreference": "GRANT_FULL"}


def test_apple_unavailable_is_retried_and_answered_once(make_app, catalog_path, tmp_path, apple_api, redis, emulator):
    a = make_apple(make_app, catalog_path, tmp_path, apple_api)
    who = player()
    bought(a, apple_api, redis, "2000000000000404", who)
    apple_api.faults({"path": "/transactions/consumption/", "status": 503, "count": 1})
    ask(a, redis, "2000000000000404", who)
    assert apple_api.consumption() == [] and history(a, "2000000000000404") == []
    reconcile_now(a.services, stale_seconds=0)  # the event is still pending: its job runs again
    drain(redis)
    assert len(apple_api.consumption()) == 1 and len(history(a, "2000000000000404")) == 1
    reconcile_now(a.services, stale_seconds=0)
    drain(redis)
    assert len(apple_api.consumption()) == 1


def test_a_game_can_turn_it_off(make_app, catalog_path, tmp_path, apple_api, redis, emulator):
    a = make_apple(make_app, catalog_path, tmp_path, apple_api, consumption_info="false")
    who = player()
    bought(a, apple_api, redis, "2000000000000405", who)
    ask(a, redis, "2000000000000405", who)
    assert apple_api.consumption() == []
    notes = history(a, "2000000000000405")
    assert [{k: v for k, v in note.items() if k != "order"} for note in notes] == [{
        "event": "consumption_request", "reason": "UNINTENDED_PURCHASE", "sent": False,
        "why": "consumption_info is false for this game"}]


def test_past_apples_12_hours_nothing_is_sent(make_app, catalog_path, tmp_path, apple_api, redis, emulator):
    a = make_apple(make_app, catalog_path, tmp_path, apple_api)
    who = player()
    bought(a, apple_api, redis, "2000000000000406", who)
    late = refund_request("2000000000000406", who, signed_date=now_ms() - 13 * 3_600_000)
    response = a.client.post("/webhooks/app-store", json={"signedPayload": late})
    assert response.status_code == 200
    drain(redis)
    assert apple_api.consumption() == []
    assert history(a, "2000000000000406")[0]["why"] == "deadline passed"


@pytest.mark.parametrize("table,problem", [
    ({"api_key_id": '"KRATYTEST1"'}, "given without api_issuer_id, api_private_key"),
    ({"api_key_id": '"KRATYTEST1"', "api_issuer_id": '"x"', "api_private_key": '"missing.p8"'}, "cannot read"),
    ({"api_key_id": '"KRATYTEST1"', "api_issuer_id": '"x"', "api_private_key": '"apple-root.cer"'},
     "not a PEM private key"),
    ({"api_key_id": '"short"'}, "10 letters and digits"),
    ({"refund_preference": '"MAYBE"'}, "must be one of"),
])
def test_the_api_settings_are_checked(catalog_path, tmp_path, table, problem):
    path = write_catalog(catalog_path, tmp_path, player_ids="app_account_token")
    extra = "".join(f"{key} = {value}\n" for key, value in table.items())
    text = Path(path).read_text().replace('player_ids = "app_account_token"\n', 'player_ids = "app_account_token"\n' + extra)
    (tmp_path / "bad.toml").write_text(text)
    with pytest.raises(CatalogError) as raised:
        load_catalog(tmp_path / "bad.toml")
    assert problem in str(raised.value)
