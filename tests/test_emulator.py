"""The Kraty emulator (emulator/): the contract in shared/protocols/kraty.md, admin API, faults,
webhooks, and the real `python -m emulator` process."""
from __future__ import annotations

import base64
import json
import re
import signal
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests
from standardwebhooks import Webhook

from emulator.app import create_app
from emulator.config import ConfigError, load, normalize
from emulator.faults import ConnectionDropped

from tests.support.wsgi_server import SHUTDOWN_POLL

ROOT = Path(__file__).resolve().parents[1]
SECRET = "whsec_" + base64.b64encode(b"emulator-test-secret-0123456789ab").decode()
SK, CK, OTHER_SK = "kraty_sk_demo", "kraty_ck_demo", "kraty_sk_other"
AUTH = {"Authorization": f"Bearer {SK}"}
OTHER = {"Authorization": f"Bearer {OTHER_SK}"}


def make_config(**extra) -> dict:
    return {"studio_id": "studio_test", "webhook_backoff": 0.01, **extra,
            "games": {
                "demo": {"server_keys": [SK], "client_keys": [CK], "currencies": ["gems", "gold"],
                         "items": ["sword", "shield", "vip_pass"]},
                "other": {"server_keys": [OTHER_SK], "currencies": ["gems"], "items": ["sword"]}}}


@pytest.fixture
def emu_app():
    app = create_app(make_config())
    yield app
    app.extensions["kraty_emulator"].dispatcher.close()


@pytest.fixture
def c(emu_app):
    return emu_app.test_client()


def wait_for(predicate, timeout=10.0):
    """Bounded poll (for a process or a webhook delivery)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError("condition not met in time")


def change(c, op, player="p1", key=None, qty=5, idem="k1", headers=AUTH, **extra):
    book, field = ("wallet", "amount") if op in ("credit", "debit") else ("inventory", "quantity")
    key = key or ("gems" if book == "wallet" else "sword")
    body = {field: qty, "reason": "iap", "sourceRefId": f"src-{idem}", "idempotencyKey": idem, **extra}
    return c.post(f"/server/v1/players/{player}/{book}/{key}/{op}", json=body, headers=headers)


def error_code(resp):
    body = resp.get_json()
    assert set(body["error"]) == {"code", "message", "details"}
    return body["error"]["code"]


def ledger(c, **filters):
    return c.get("/_emulator/ledger", query_string=filters).get_json()["entries"]


# ---- auth, basics ------------------------------------------------------------------------------
@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer nope"}, {"Authorization": "Basic x"}])
def test_missing_or_unknown_key_is_401(c, headers):
    r = change(c, "credit", headers=headers)
    assert r.status_code == 401 and error_code(r) == "unauthenticated"


def test_client_sdk_key_is_403(c):
    r = change(c, "credit", headers={"Authorization": f"Bearer {CK}"})
    assert r.status_code == 403 and error_code(r) == "forbidden"
    assert c.get("/server/v1/players/p1", headers={"Authorization": f"Bearer {CK}"}).status_code == 403


def test_credit_debit_and_balances(c):
    r = change(c, "credit", qty=10, idem="a")
    assert r.status_code == 200
    data = r.get_json()["data"]
    assert re.fullmatch(r"le_[0-9a-f]+", data["ledgerEntryId"])
    assert data == {"ledgerEntryId": data["ledgerEntryId"], "balance": 10, "replayed": False}
    d = change(c, "debit", qty=3, idem="b").get_json()["data"]
    assert d["balance"] == 7 and d["ledgerEntryId"] != data["ledgerEntryId"]
    assert c.get("/_emulator/players/demo/p1").get_json()["wallet"] == {"gems": 7}


def test_grant_and_revoke(c):
    g = change(c, "grant", qty=2, idem="g").get_json()["data"]
    assert g["quantity"] == 2 and g["replayed"] is False
    r = change(c, "revoke", qty=1, idem="r").get_json()["data"]
    assert r["quantity"] == 1
    assert c.get("/_emulator/players/demo/p1").get_json()["inventory"] == {"sword": 1}


def test_below_zero_refused_unless_allow_negative(c):
    change(c, "credit", qty=2, idem="c")
    r = change(c, "debit", qty=5, idem="d")
    assert r.status_code == 409 and error_code(r) == "insufficient_funds"
    r = change(c, "debit", qty=5, idem="d", allowNegative=True)
    assert r.status_code == 200 and r.get_json()["data"]["balance"] == -3
    change(c, "grant", qty=1, idem="g")
    r = change(c, "revoke", qty=2, idem="r")
    assert r.status_code == 409 and error_code(r) == "insufficient_quantity"
    assert change(c, "revoke", qty=2, idem="r", allowNegative=True).get_json()["data"]["quantity"] == -1


def test_replay_returns_first_answer_without_applying(c):
    first = change(c, "credit", qty=5, idem="same").get_json()["data"]
    change(c, "credit", qty=1, idem="other")
    again = change(c, "credit", qty=5, idem="same")
    assert again.status_code == 200
    assert again.get_json()["data"] == {**first, "replayed": True}
    assert c.get("/_emulator/players/demo/p1").get_json()["wallet"]["gems"] == 6
    assert len(ledger(c, idempotencyKey="same")) == 1


def test_same_key_different_body_is_409(c):
    change(c, "credit", qty=5, idem="k")
    r = change(c, "credit", qty=6, idem="k")
    assert r.status_code == 409 and error_code(r) == "idempotency_key_conflict"


def test_idempotency_scope_is_game_op_player_target(c):
    for call in (lambda: change(c, "credit", idem="k"),
                 lambda: change(c, "credit", idem="k", player="p2"),
                 lambda: change(c, "credit", idem="k", key="gold"),
                 lambda: change(c, "debit", idem="k", qty=1),
                 lambda: change(c, "credit", idem="k", headers=OTHER)):
        assert call().get_json()["data"]["replayed"] is False


def test_games_are_isolated(c):
    change(c, "credit", player="shared", qty=5)
    assert c.get("/server/v1/players/shared", headers=OTHER).status_code == 404
    assert change(c, "credit", key="gold", headers=OTHER).status_code == 404


@pytest.mark.parametrize("op,key,player,code", [
    ("credit", "rubies", "p1", "currency_not_found"),
    ("grant", "bow", "p1", "item_not_found"),
    ("debit", "gems", "ghost", "player_not_found"),
    ("revoke", "sword", "ghost", "player_not_found"),
])
def test_not_found(c, op, key, player, code):
    change(c, "credit", player="p1", idem="seed")
    r = change(c, op, player=player, key=key, idem="x")
    assert r.status_code == 404 and error_code(r) == code


@pytest.mark.parametrize("patch", [
    {"amount": 0}, {"amount": -1}, {"amount": "5"}, {"amount": 1.5}, {"amount": True},
    {"reason": ""}, {"reason": None}, {"idempotencyKey": None}, {"idempotencyKey": 7},
    {"allowNegative": "yes"}, {"sourceRefId": 12},
])
def test_validation_failed(c, patch):
    body = {"amount": 1, "reason": "r", "sourceRefId": "s", "idempotencyKey": "k", **patch}
    body = {k: v for k, v in body.items() if v is not None}
    r = c.post("/server/v1/players/p1/wallet/gems/debit", json=body, headers=AUTH)
    assert r.status_code == 400 and error_code(r) == "validation_failed"


def test_non_json_body_is_400(c):
    r = c.post("/server/v1/players/p1/wallet/gems/credit", data=b"not json", headers=AUTH)
    assert r.status_code == 400 and error_code(r) == "validation_failed"


def _scenario(c):
    calls = [change(c, "credit", qty=5, idem="a"), change(c, "credit", qty=5, idem="a"),
             change(c, "credit", qty=6, idem="a"), change(c, "debit", qty=50, idem="b"),
             change(c, "debit", qty=50, idem="b", allowNegative=True), change(c, "grant", idem="c"),
             change(c, "revoke", player="ghost", idem="d"), change(c, "credit", key="nope"),
             change(c, "credit", qty=0), change(c, "credit", headers={}),
             change(c, "grant", headers={"Authorization": f"Bearer {CK}"}),
             c.post("/server/v1/players/p1/wallet/gems/credit", data=b"[1]", headers=AUTH),
             c.post("/server/v1/players/p1/wallet/gems/grant", json={}, headers=AUTH)]
    out = []
    for r in calls:
        body = r.get_json()
        if "data" in body:
            body["data"].pop("ledgerEntryId")
        out.append((r.status_code, body))
    return out


def test_fast_path_answers_exactly_like_the_flask_views(monkeypatch):
    fast = _scenario(create_app(make_config()).test_client())
    monkeypatch.setattr("emulator.fastpath.CHANGE_RE", re.compile(r"^$"))
    slow_app = create_app(make_config())
    assert _scenario(slow_app.test_client()) == fast
    assert fast[1][1]["data"] == {"balance": 5, "replayed": True}


def test_concurrent_credits_apply_exactly_once(emu_app):
    def worker(i):
        c = emu_app.test_client()
        for n in range(40):
            change(c, "credit", qty=1, idem=f"{i}-{n}")
            change(c, "credit", qty=1, idem="shared")  # the same key from every thread

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    c = emu_app.test_client()
    assert c.get("/_emulator/players/demo/p1").get_json()["wallet"] == {"gems": 8 * 40 + 1}
    assert len(ledger(c)) == 8 * 40 + 1


# ---- players -------------------------------------------------------------------------------
def test_profile_shape_and_limit(c):
    change(c, "credit", qty=4)
    for i in range(3):
        c.post("/server/v1/players/p1/grants", headers=AUTH,
               json={"contents": [{"itemKey": "sword", "quantity": 1}], "reason": "sorry",
                     "idempotencyKey": f"mg{i}"})
    data = c.get("/server/v1/players/p1", headers=AUTH).get_json()["data"]
    assert set(data) == {"player", "attempts", "grants", "lobbies", "summary"}
    assert data["player"]["wallet"] == {"gems": 4} and data["summary"]["wallet"] == {"gems": 4}
    assert len(data["grants"]) == 3 and data["summary"]["grantsCount"] == 3
    limited = c.get("/server/v1/players/p1?limit=2", headers=AUTH).get_json()["data"]
    assert len(limited["grants"]) == 2
    for bad in ("0", "201", "x"):
        r = c.get(f"/server/v1/players/p1?limit={bad}", headers=AUTH)
        assert r.status_code == 400 and error_code(r) == "validation_failed"
    assert error_code(c.get("/server/v1/players/nobody", headers=AUTH)) == "player_not_found"


def test_make_good_grant(c):
    body = {"contents": [{"currencyKey": "gems", "amount": 50}, {"itemKey": "vip_pass", "quantity": 1}],
            "reason": "outage", "idempotencyKey": "mg-1"}
    r = c.post("/server/v1/players/newbie/grants", json=body, headers=AUTH)
    data = r.get_json()["data"]
    assert r.status_code == 200 and data["grantId"].startswith("gr_") and data["replayed"] is False
    assert c.post("/server/v1/players/newbie/grants", json=body, headers=AUTH).get_json()["data"] == {
        **data, "replayed": True}
    conflict = c.post("/server/v1/players/newbie/grants", json={**body, "reason": "x"}, headers=AUTH)
    assert conflict.status_code == 409
    bad = c.post("/server/v1/players/newbie/grants", headers=AUTH,
                 json={**body, "idempotencyKey": "mg-2", "contents": [{"itemKey": "bow", "quantity": 1}]})
    assert error_code(bad) == "item_not_found"
    assert c.post("/server/v1/players/newbie/grants", headers=AUTH,
                  json={**body, "contents": []}).status_code == 400
    assert [e["kind"] for e in ledger(c, player="newbie")] == ["makegood"]
    claimed = c.post(f"/_emulator/grants/demo/{data['grantId']}/claim").get_json()
    assert claimed["status"] == "claimed"
    assert c.get("/_emulator/players/demo/newbie").get_json()["wallet"] == {"gems": 50}


def test_export(c):
    assert error_code(c.get("/server/v1/players/p1/export", headers=AUTH)) == "player_not_found"
    change(c, "credit", qty=3)
    change(c, "grant", qty=1, idem="g")
    data = c.get("/server/v1/players/p1/export", headers=AUTH).get_json()["data"]
    assert set(data) == {"player", "attempts", "grants", "inventory", "wallet", "lobbies"}
    assert data["wallet"] == {"gems": 3} and data["inventory"] == {"sword": 1}


def test_delete_statuses_and_anonymisation(emu_app, c):
    assert c.delete("/server/v1/players/p1", json={"reason": "gdpr"},
                    headers=AUTH).get_json()["data"]["status"] == "no_op_never_existed"
    entry = change(c, "credit", qty=3).get_json()["data"]["ledgerEntryId"]
    r = c.delete("/server/v1/players/p1", json={"reason": "gdpr"}, headers=AUTH).get_json()["data"]
    assert r["status"] == "erased" and r["playerId"].startswith("pl_")
    again = c.delete("/server/v1/players/p1", json={"reason": "gdpr"}, headers=AUTH)
    assert again.get_json()["data"]["status"] == "no_op_already_erased"
    assert c.get("/server/v1/players/p1", headers=AUTH).status_code == 404
    players = emu_app.extensions["kraty_emulator"].store.games["demo"].players
    assert any(re.fullmatch(r"__deleted_[0-9a-f-]{36}__", ext) for ext in players)
    assert [e["id"] for e in ledger(c, playerId=r["playerId"])] == [entry]  # ledgers kept


def test_merge(c):
    change(c, "credit", player="guest", qty=5, idem="a")
    change(c, "grant", player="guest", qty=2, idem="b")
    change(c, "credit", player="auth", qty=1, idem="c")
    change(c, "grant", player="auth", key="shield", qty=1, idem="d")
    r = c.post("/server/v1/players/guest/merge", json={"into": "auth"}, headers=AUTH)
    data = r.get_json()["data"]
    assert r.status_code == 200 and data["status"] == "merged"
    assert data["counts"] == {"attempts": 0, "grants": 0, "items": 1, "wallets": 1, "lobbies": 0}
    auth = c.get("/_emulator/players/demo/auth").get_json()
    assert auth["wallet"] == {"gems": 6} and auth["inventory"] == {"sword": 2, "shield": 1}
    assert c.get("/server/v1/players/guest", headers=AUTH).status_code == 404
    repeat = c.post("/server/v1/players/guest/merge", json={"into": "auth"}, headers=AUTH)
    assert repeat.get_json()["data"]["status"] == "no_op_already_merged"
    assert c.post("/server/v1/players/guest/merge", json={"into": "x"}, headers=AUTH).status_code == 409
    assert c.post("/server/v1/players/auth/merge", json={"into": "auth"}, headers=AUTH).status_code == 400
    assert c.post("/server/v1/players/nobody/merge", json={"into": "auth"}, headers=AUTH).status_code == 404


def test_migrate(emu_app, c):
    r = c.post("/server/v1/migrate/players", headers=AUTH,
               json={"rows": [{"externalPlayerId": "m1"}, {"externalPlayerId": "m1"}, {}]})
    data = r.get_json()["data"]
    assert (data["applied"], data["skipped"]) == (1, 1)
    assert [f["index"] for f in data["failures"]] == [2]
    rows = [{"externalPlayerId": "m1", "currencyKey": "gems", "balance": 40},
            {"externalPlayerId": "m2", "currencyKey": "rubies", "balance": 1}]
    data = c.post("/server/v1/migrate/wallets", json={"rows": rows}, headers=AUTH).get_json()["data"]
    assert data["applied"] == 1 and data["failures"][0]["code"] == "currency_not_found"
    data = c.post("/server/v1/migrate/inventory", headers=AUTH,
                  json={"rows": [{"externalPlayerId": "m1", "itemKey": "sword", "quantity": 2}]}).get_json()
    assert data["data"]["applied"] == 1
    assert c.get("/_emulator/players/demo/m1").get_json()["wallet"] == {"gems": 40}
    too_many = [{"externalPlayerId": f"x{i}"} for i in range(1001)]
    assert c.post("/server/v1/migrate/players", json={"rows": too_many}, headers=AUTH).status_code == 400
    assert c.get("/_emulator/webhooks").get_json()["deliveries"] == []


# ---- admin ----------------------------------------------------------------------------------
def test_ledger_filters(c):
    change(c, "credit", player="a", idem="1")
    change(c, "credit", player="b", idem="2")
    change(c, "grant", player="a", idem="3")
    change(c, "credit", player="a", idem="4", headers=OTHER)
    assert len(ledger(c)) == 4
    assert len(ledger(c, game="demo")) == 3
    assert len(ledger(c, player="a")) == 3
    assert len(ledger(c, game="demo", player="a", kind="credit")) == 1
    assert [e["idempotencyKey"] for e in ledger(c, sourceRefId="src-3")] == ["3"]
    entry = ledger(c, idempotencyKey="3")[0]
    assert {"id", "game", "player", "kind", "itemKey", "delta", "quantity", "reason", "sourceRefId",
            "idempotencyKey", "createdAt"} <= set(entry)


def test_reset_games_and_stats(c):
    change(c, "credit")
    stats = c.get("/_emulator/stats").get_json()
    assert stats["total"] == 1 and stats["byStatus"] == {"200": 1}
    assert c.post("/_emulator/reset").status_code == 200
    assert ledger(c) == [] and c.get("/_emulator/stats").get_json()["total"] == 0
    r = c.put("/_emulator/games/new", json={"server_keys": ["kraty_sk_new"], "currencies": ["coins"]})
    assert r.status_code == 200
    hdr = {"Authorization": "Bearer kraty_sk_new"}
    assert change(c, "credit", key="coins", headers=hdr).status_code == 200
    assert c.put("/_emulator/games/dup", json={"server_keys": [SK]}).status_code == 400
    assert change(c, "credit", headers=AUTH).status_code == 200  # the demo key still works


# ---- faults ---------------------------------------------------------------------------------
def set_faults(c, *rules):
    r = c.put("/_emulator/faults", json={"rules": list(rules)})
    assert r.status_code == 200, r.get_json()
    return r.get_json()["rules"]


def test_fault_before_does_not_apply(c):
    set_faults(c, {"path": "/wallet/.*/credit", "status": 503})
    r = change(c, "credit")
    assert r.status_code == 503 and error_code(r) == "service_unavailable"
    assert ledger(c) == []
    assert change(c, "grant").status_code == 200  # path does not match
    stats = c.get("/_emulator/stats").get_json()
    assert stats["total"] == 2 and stats["handled"] == 1 and stats["faults"]["fired"] == 1


def test_fault_429_sends_retry_after(c):
    set_faults(c, {"status": 429, "retry_after": 7, "method": "POST"})
    r = change(c, "credit")
    assert r.status_code == 429 and r.headers["Retry-After"] == "7" and error_code(r) == "rate_limited"
    assert c.get("/server/v1/players/p1", headers=AUTH).status_code == 404  # GET not matched


def test_fault_after_applies_then_fails_and_retry_replays(c):
    set_faults(c, {"path": "/credit$", "status": 500, "phase": "after", "count": 1})
    assert change(c, "credit", idem="lost").status_code == 500
    assert len(ledger(c, idempotencyKey="lost")) == 1  # committed although the answer was 500
    retry = change(c, "credit", idem="lost")
    assert retry.status_code == 200 and retry.get_json()["data"]["replayed"] is True
    assert c.get("/_emulator/players/demo/p1").get_json()["wallet"] == {"gems": 5}


def test_fault_count_and_error_rate(c):
    rules = set_faults(c, {"status": 502, "count": 2}, {"status": 500, "error_rate": 0})
    assert rules[0]["remaining"] == 2
    codes = [change(c, "credit", idem=f"k{i}").status_code for i in range(4)]
    assert codes == [502, 502, 200, 200]
    assert c.get("/_emulator/faults").get_json()["rules"][0]["remaining"] == 0
    assert c.delete("/_emulator/faults").status_code == 200
    assert c.get("/_emulator/faults").get_json()["rules"] == []


def test_only_first_answering_rule_fires(c):
    set_faults(c, {"status": 503, "count": 1}, {"status": 429, "count": 1}, {"latency_ms": 1})
    assert [change(c, "credit", idem=f"k{i}").status_code for i in range(3)] == [503, 429, 200]
    assert [r["fired"] for r in c.get("/_emulator/faults").get_json()["rules"]] == [1, 1, 3]


def test_fault_latency(c):
    set_faults(c, {"latency_ms": 150, "phase": "after"})
    started = time.monotonic()
    assert change(c, "credit").status_code == 200
    assert time.monotonic() - started >= 0.15


def test_fault_drop_in_test_client(c):
    set_faults(c, {"drop": True, "phase": "after", "count": 1})
    with pytest.raises(ConnectionDropped):
        change(c, "credit", idem="d")
    assert len(ledger(c, idempotencyKey="d")) == 1
    assert c.get("/_emulator/stats").get_json()["faults"]["dropped"] == 1


@pytest.mark.parametrize("rule", [{}, {"status": "x"}, {"status": 500, "phase": "during"},
                                  {"status": 500, "error_rate": 2}, {"status": 500, "count": 0},
                                  {"status": 500, "path": "("}, {"status": 500, "bogus": 1}])
def test_bad_fault_rules_are_400(c, rule):
    assert c.put("/_emulator/faults", json={"rules": [rule]}).status_code == 400


# ---- config ---------------------------------------------------------------------------------
def test_config_load_example_and_errors():
    cfg = load(str(ROOT / "emulator" / "example.toml"))
    assert cfg["games"]["demo"]["server_keys"] == ["kraty_sk_demo"]
    assert cfg["games"]["demo"]["currencies"] == ["gems", "gold"]
    with pytest.raises(ConfigError):
        normalize({"games": {"a": {"server_keys": ["k"]}, "b": {"server_keys": ["k"]}}})
    with pytest.raises(ConfigError):
        normalize({"webhook_secret": "not-whsec"})


# ---- webhooks (real loopback receiver) --------------------------------------------------------
class Receiver:
    def __init__(self, statuses=()):
        self.messages, self.statuses = [], list(statuses)
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                outer.messages.append((dict(self.headers), body))
                status = outer.statuses.pop(0) if outer.statuses else 204
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/webhooks/kraty"
        threading.Thread(target=self.server.serve_forever, args=(SHUTDOWN_POLL,), daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    rec = Receiver(statuses=[500])  # the first delivery fails: exercises a retry
    yield rec
    rec.close()


def test_webhooks_signed_retried_and_not_sent_for_replays(receiver):
    app = create_app(make_config(webhook_url=receiver.url, webhook_secret=SECRET))
    c = app.test_client()
    try:
        le = change(c, "credit", qty=5, idem="w").get_json()["data"]["ledgerEntryId"]
        wait_for(lambda: len(receiver.messages) >= 2)
        headers, body = receiver.messages[-1]
        lower = {k.lower(): v for k, v in headers.items()}
        event = Webhook(SECRET).verify(body, lower)  # raises on a bad signature
        assert event["type"] == "wallet.changed" and event["gameId"] == "demo"
        assert event["studioId"] == "studio_test" and event["id"].startswith("evt_")
        assert event["data"] == {"externalPlayerId": "p1", "currencyKey": "gems", "delta": 5,
                                 "balance": 5, "reason": "iap", "sourceRefId": "src-w",
                                 "ledgerEntryId": le}
        # the receiver has the body before the dispatcher has logged the answer: wait for the log
        wait_for(lambda: c.get("/_emulator/webhooks").get_json()["deliveries"][0]["status"] == "delivered")
        log = c.get("/_emulator/webhooks").get_json()["deliveries"]
        assert [a["status"] for a in log[0]["attempts"]] == [500, 204]
        assert log[0]["status"] == "delivered"
        change(c, "credit", qty=5, idem="w")  # replay: nothing fires
        change(c, "debit", qty=2, idem="x")
        c.post("/server/v1/players/p1/grants", headers=AUTH, json={
            "contents": [{"itemKey": "sword", "quantity": 1}], "reason": "sorry", "idempotencyKey": "m"})
        c.post("/server/v1/players/p1/merge", json={"into": "p9"}, headers=AUTH)
        c.delete("/server/v1/players/p9", json={"reason": "gdpr"}, headers=AUTH)
        assert len(c.get("/_emulator/webhooks").get_json()["deliveries"]) == 5  # none for the replay
        wait_for(lambda: len(receiver.messages) >= 6)
        types = sorted(json.loads(b)["type"] for _, b in receiver.messages[2:])
        assert types == ["grant.created", "player.deleted", "player.merged", "wallet.changed"]
        by_type = {json.loads(b)["type"]: json.loads(b)["data"] for _, b in receiver.messages[2:]}
        assert by_type["player.deleted"]["externalPlayerId"] == "p9"
        assert by_type["player.merged"]["counts"]["grants"] == 1
        assert by_type["wallet.changed"]["delta"] == -2
    finally:
        app.extensions["kraty_emulator"].dispatcher.close()


def test_webhook_config_via_admin(receiver):
    app = create_app(make_config())
    c = app.test_client()
    try:
        change(c, "credit", idem="before")  # no webhook configured yet
        r = c.put("/_emulator/webhooks/config", json={"game": "demo", "url": receiver.url, "secret": SECRET})
        assert r.status_code == 200 and r.get_json()["games"]["demo"]["secretSet"] is True
        receiver.statuses = []
        change(c, "grant", idem="after")
        _, body = wait_for(lambda: receiver.messages and receiver.messages[-1])
        assert json.loads(body)["type"] == "inventory.changed"
        assert len(receiver.messages) == 1
    finally:
        app.extensions["kraty_emulator"].dispatcher.close()


# ---- the real process -----------------------------------------------------------------------
@pytest.fixture(params=["gunicorn", "werkzeug"])
def process(request, tmp_path):
    cfg = tmp_path / "emu.toml"
    cfg.write_text((ROOT / "emulator" / "example.toml").read_text())
    proc = subprocess.Popen(
        [sys.executable, "-m", "emulator", "--host", "127.0.0.1", "--port", "0", "--config", str(cfg),
         "--server", request.param], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        match = re.fullmatch(r"kraty emulator listening on (http://127\.0\.0\.1:\d+)\n", line)
        assert match, (line, proc.stderr.read() if proc.poll() is not None else "")
        url = match.group(1)
        wait_for(lambda: _reachable(url))
        yield url, proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


def _reachable(url):
    try:
        return requests.get(f"{url}/_emulator/health", timeout=1).status_code == 200
    except requests.ConnectionError:
        return False


@pytest.mark.processes
def test_process_serves_http_drops_and_stops_on_sigterm(process):
    url, proc = process
    session = requests.Session()
    body = {"amount": 7, "reason": "iap", "sourceRefId": "t1", "idempotencyKey": "t1"}
    credit = f"{url}/server/v1/players/p1/wallet/gems/credit"
    r = session.post(credit, json=body, headers=AUTH, timeout=5)
    assert r.status_code == 200 and r.json()["data"]["balance"] == 7
    session.put(f"{url}/_emulator/faults", json={"rules": [
        {"path": "/credit$", "drop": True, "phase": "after", "count": 1}]}).raise_for_status()
    with pytest.raises(requests.ConnectionError):
        requests.post(credit, json={**body, "idempotencyKey": "t2"}, headers=AUTH, timeout=5)
    retry = session.post(credit, json={**body, "idempotencyKey": "t2"}, headers=AUTH, timeout=5)
    assert retry.json()["data"] == {**retry.json()["data"], "balance": 14, "replayed": True}
    assert session.get(f"{url}/_emulator/stats").json()["total"] == 3
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(15) == 0


@pytest.mark.processes
def test_process_bad_config_exits_2(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('[games.a]\nserver_keys = ["k"]\n[games.b]\nserver_keys = ["k"]\n')
    proc = subprocess.run([sys.executable, "-m", "emulator", "--port", "0", "--config", str(bad)],
                          cwd=ROOT, capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2 and "API key used twice" in proc.stderr


@pytest.mark.processes
def test_process_sends_signed_webhooks_from_cli_flags():
    rec = Receiver()
    proc = subprocess.Popen(
        [sys.executable, "-m", "emulator", "--port", "0", "--webhook-url", rec.url,
         "--webhook-secret", SECRET], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        url = re.search(r"http://\S+", proc.stdout.readline()).group(0)
        wait_for(lambda: _reachable(url))
        r = requests.post(f"{url}/server/v1/players/p1/inventory/sword/grant", headers=AUTH, timeout=5,
                          json={"quantity": 1, "reason": "iap", "sourceRefId": "t", "idempotencyKey": "t"})
        assert r.status_code == 200
        headers, body = wait_for(lambda: rec.messages and rec.messages[0])
        event = Webhook(SECRET).verify(body, {k.lower(): v for k, v in headers.items()})
        assert event["type"] == "inventory.changed" and event["data"]["quantity"] == 1
        assert event["studioId"] == "studio_demo"
        proc.send_signal(signal.SIGINT)
        assert proc.wait(15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        rec.close()
