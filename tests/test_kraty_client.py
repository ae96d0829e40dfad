"""The Kraty client against the emulator: every call, and every failure classified transient or permanent."""
from __future__ import annotations

import pytest
import requests

from middleware.kraty.client import KratyClient, KratyError, pooled_session


@pytest.fixture
def kraty(emulator):
    return KratyClient(emulator.url, "kraty_sk_demo", (1.0, 1.0))


def test_credit_debit_grant_revoke_and_replay(kraty):
    first = kraty.credit("p1", "gems", 100, reason="r", source_ref="t1", key="k1")
    assert first["balance"] == 100 and first["ledgerEntryId"].startswith("le_") and not first["replayed"]
    again = kraty.credit("p1", "gems", 100, reason="r", source_ref="t1", key="k1")
    assert again["replayed"] and again["ledgerEntryId"] == first["ledgerEntryId"] and again["balance"] == 100
    assert kraty.debit("p1", "gems", 30, reason="r", source_ref="t1", key="k2")["balance"] == 70
    assert kraty.grant_item("p1", "sword", 2, reason="r", source_ref="t1", key="k3")["quantity"] == 2
    assert kraty.revoke_item("p1", "sword", 1, reason="r", source_ref="t1", key="k4")["quantity"] == 1
    assert kraty.debit("p1", "gems", 100, reason="r", source_ref="t1", key="k5", allow_negative=True)["balance"] == -30


def test_player_calls(kraty):
    kraty.credit("p2", "gold", 5, reason="r", source_ref="t", key="k")
    assert kraty.player_profile("p2", limit=10)["player"]
    assert kraty.export_player("p2")["wallet"]
    assert kraty.make_good("p2", [{"currencyKey": "gems", "amount": 10}], reason="sorry", key="mg1")
    kraty.credit("guest", "gold", 1, reason="r", source_ref="t", key="k")
    merged = kraty.merge_players("guest", "p2")
    assert (merged["status"], merged["from"], merged["into"]) == ("merged", "guest", "p2")
    assert kraty.delete_player("p2", reason="gdpr")["status"] == "erased"
    assert "applied" in kraty.migrate("players", [{"externalPlayerId": "m1"}])
    with pytest.raises(ValueError):
        kraty.migrate("players", [{}] * 1001)
    with pytest.raises(ValueError):
        kraty.migrate("lobbies", [])


@pytest.mark.parametrize("call, code", [
    (lambda k: k.credit("p", "rubies", 1, reason="r", source_ref="t", key="x"), "currency_not_found"),
    (lambda k: k.grant_item("p", "laser", 1, reason="r", source_ref="t", key="x"), "item_not_found"),
    (lambda k: k.debit("nobody", "gems", 1, reason="r", source_ref="t", key="x"), "player_not_found"),
    (lambda k: k.credit("p", "gems", 0, reason="r", source_ref="t", key="x"), "validation_failed"),
])
def test_4xx_are_permanent(kraty, call, code):
    with pytest.raises(KratyError) as info:
        call(kraty)
    assert not info.value.transient and info.value.code == code and 400 <= info.value.status < 500


def test_idempotency_conflict_and_insufficient_funds_are_permanent(kraty):
    kraty.credit("p", "gems", 10, reason="r", source_ref="t", key="same")
    with pytest.raises(KratyError) as info:
        kraty.credit("p", "gems", 11, reason="r", source_ref="t", key="same")
    assert (info.value.status, info.value.code, info.value.transient) == (409, "idempotency_key_conflict", False)
    with pytest.raises(KratyError) as info:
        kraty.debit("p", "gems", 50, reason="r", source_ref="t", key="d")
    assert info.value.code == "insufficient_funds" and not info.value.transient


def test_wrong_keys_are_permanent(emulator):
    for key, status in (("nope", 401), ("kraty_ck_demo", 403)):
        with pytest.raises(KratyError) as info:
            KratyClient(emulator.url, key, (1.0, 1.0)).credit("p", "gems", 1, reason="r", source_ref="t", key="k")
        assert info.value.status == status and not info.value.transient


@pytest.mark.parametrize("rule, code", [
    ({"status": 500}, "internal_error"),
    ({"status": 503}, "service_unavailable"),
    ({"latency_ms": 1500}, "timeout"),
    ({"drop": True}, "connection_error"),
])
def test_5xx_timeouts_and_dropped_connections_are_transient(kraty, emulator, rule, code):
    emulator.faults({"path": "/credit", "count": 1, **rule})
    with pytest.raises(KratyError) as info:
        kraty.credit("p", "gems", 1, reason="r", source_ref="t", key="k")
    assert info.value.transient and info.value.code == code


def test_429_is_transient_with_retry_after(kraty, emulator):
    emulator.faults({"path": "/credit", "status": 429, "retry_after": 7, "count": 1})
    with pytest.raises(KratyError) as info:
        kraty.credit("p", "gems", 1, reason="r", source_ref="t", key="k")
    assert info.value.transient and info.value.retry_after == 7.0 and info.value.code == "rate_limited"


def test_unreachable_kraty_is_transient():
    client = KratyClient("http://127.0.0.1:1", "k", (0.5, 0.5))
    with pytest.raises(KratyError) as info:
        client.credit("p", "gems", 1, reason="r", source_ref="t", key="k")
    assert info.value.transient and info.value.code == "connection_error"


def test_player_ids_are_escaped_in_paths(kraty, emulator):
    kraty.credit("a b:c?d#e", "gems", 1, reason="r", source_ref="t", key="k")
    assert [e["player"] for e in emulator.ledger()] == ["a b:c?d#e"]


class _Capture(requests.adapters.BaseAdapter):
    """An adapter that keeps the request it is given and answers 200 with an empty data object."""

    def __init__(self):
        super().__init__()
        self.sent: list[requests.PreparedRequest] = []

    def send(self, request, **_kwargs):
        self.sent.append(request)
        response = requests.Response()
        response.status_code, response._content, response.request = 200, b'{"data": {}}', request
        return response

    def close(self):
        pass


@pytest.mark.parametrize("call", ["credit", "profile", "delete"])
def test_a_request_is_sent_as_requests_itself_would_prepare_it(call):
    """The client prepares its requests itself (no cookie or settings merging): method, URL with its query,
    headers (requests' defaults included) and body are what ``Session.request`` would have sent."""
    capture = _Capture()
    pooled_session().mount("http://kraty.test/", capture)
    client = KratyClient("http://kraty.test", "key", (1.0, 1.0))
    try:
        if call == "credit":
            client.credit("p 1", "gems", 5, reason="r", source_ref="t", key="k")
        elif call == "profile":
            client.player_profile("p1", limit=7)
        else:
            client.delete_player("p1", "asked")
    finally:
        pooled_session().adapters.pop("http://kraty.test/")
    method, path, kwargs = {
        "credit": ("POST", "/players/p%201/wallet/gems/credit",
                   {"json": {"amount": 5, "reason": "r", "sourceRefId": "t", "idempotencyKey": "k"}}),
        "profile": ("GET", "/players/p1", {"params": {"limit": 7}}),
        "delete": ("DELETE", "/players/p1", {"json": {"reason": "asked"}})}[call]
    session = requests.Session()
    session.trust_env = False
    expected = session.prepare_request(requests.Request(method, client.base + path, headers=client.headers, **kwargs))
    [sent] = capture.sent
    assert (sent.method, sent.url, sent.body) == (expected.method, expected.url, expected.body)
    assert dict(sent.headers) == dict(expected.headers)
