"""Bodies that used to end in a 500 (issue 13 item 7): nested deeper than the JSON decoder goes, or
holding a lone surrogate. Signed or not, they answer 4xx, log no traceback and store nothing. Runs on
SQLite, and on PostgreSQL with KB_TEST_DATABASE_URL."""
from __future__ import annotations

import json
import logging

import pytest

from middleware.api import json_body

from tests.support import stripe_events as stripe
from tests.support.kraty_webhooks import event, kraty_app, recorded, send  # noqa: F401  (fixture)
from tests.support.accelbyte import make_app  # noqa: F401  (fixture)

DEEP = b"[" * 100_000 + b"]" * 100_000          # far deeper than the decoder's recursion limit
NESTED = json.dumps({"gameId": "demo"}).encode()
for _ in range(200):                            # parses, but deeper than any event: refused as well
    NESTED = b'{"a": ' + NESTED + b"}"
SURROGATE_TYPE = b'{"id": "evt_1", "type": "wallet.\\ud800changed", "gameId": "demo", "data": {}}'
SURROGATE_PLAYER = b'{"id": "evt_2", "type": "wallet.changed", "gameId": "demo", "data": {"externalPlayerId": "p\\udfff"}}'


def no_traceback(caplog) -> None:
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info], caplog.text[-2000:]


def test_the_parser_bounds_what_it_accepts():
    assert json_body.parse(b'{"a": [1, 2, {"b": "\\u00e9"}]}') == {"a": [1, 2, {"b": "\u00e9"}]}
    for bad in (DEEP, NESTED, SURROGATE_TYPE, SURROGATE_PLAYER, b'{"a": NaN}', b"\xff", b"{"):
        assert json_body.parse(bad) is None, bad[:40]


def test_unsigned_deep_kraty_body_is_refused_without_a_traceback(kraty_app, services, caplog):
    client = kraty_app.test_client()
    headers = {"webhook-id": "msg_deep", "webhook-timestamp": "1", "webhook-signature": "v1,AAAA",
               "Content-Type": "application/json"}
    response = client.post("/webhooks/kraty", data=DEEP, headers=headers)
    assert response.status_code == 401 and response.get_json()["error"]["code"] == "invalid_signature"
    no_traceback(caplog)
    assert recorded(services) == 0


@pytest.mark.parametrize("body", [DEEP, NESTED, SURROGATE_TYPE, SURROGATE_PLAYER], ids=["deep", "nested", "type",
                                                                                        "player"])
def test_signed_kraty_bodies_that_cannot_be_stored_are_400(kraty_app, services, caplog, body):
    response = send(kraty_app.test_client(), body)
    assert response.status_code == 400, response.get_data()[:300]
    assert response.get_json()["error"]["code"] == "malformed_body"
    no_traceback(caplog)
    assert recorded(services) == 0
    assert send(kraty_app.test_client(), event()).status_code == 200  # the endpoint still works


@pytest.mark.parametrize("body", [
    DEEP,
    json.dumps(stripe.event("charge.refunded", {"id": "ch_1"})).encode().replace(b'"ch_1"', NESTED),
    json.dumps(stripe.event("charge.refunded", {"id": "ch_1"})).encode().replace(b'"ch_1"', b'"ch_\\ud83d"'),
], ids=["deep", "nested", "surrogate"])
def test_signed_stripe_bodies_that_cannot_be_stored_are_400(make_app, services, caplog, body):
    response = stripe.post(make_app().test_client(), body)
    assert response.status_code == 400, response.get_data()[:300]
    assert response.get_json()["error"]["code"] == "malformed_body"
    no_traceback(caplog)
    assert stripe.inbound(services) == []
