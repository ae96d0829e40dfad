"""Shared helpers and fixtures of the AccelByte-compatible API tests (no tests in this module).

Import the fixtures you use into the test module (pytest picks fixtures up from a module's namespace).
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import requests
from sqlalchemy import text

from config.storefronts import hash_token
from tests.support.orders_flow import AUTH, fulfil_path
from workers import runtime

LEDGER_TABLES = ("inbound_events", "fulfilments", "fulfilment_items", "fulfilment_history")
OTHER_TOKEN = "other-storefront-token"
BOTH_TOKEN = "both-storefront-token"
OTHER_AUTH = {"Authorization": f"Bearer {OTHER_TOKEN}"}
BOTH_AUTH = {"Authorization": f"Bearer {BOTH_TOKEN}"}
KRATY_SERVER_KEY = "kraty_sk_demo"
GEMS_500_ID = "5f0c1d2e3a4b49c8a7e6d5c4b3a29180"
STARTER_PACK_ID = "9a8b7c6d5e4f40312a1b2c3d4e5f6071"
TEXT_COLUMNS_ORDER = {"inbound_events": "id", "fulfilments": "id", "fulfilment_items": "id",
                      "fulfilment_history": "id"}


# ---------------------------------------------------------------- ledger and Kraty snapshots
def ledger_snapshot(services) -> dict:
    """Every row of every ledger table, in a stable order."""
    out = {}
    with services.engine.connect() as connection:
        for table in LEDGER_TABLES:
            rows = connection.execute(text(f"SELECT * FROM {table} ORDER BY {TEXT_COLUMNS_ORDER[table]}"))
            out[table] = [tuple(row) for row in rows]
    return out


def ledger_counts(services) -> dict:
    with services.engine.connect() as connection:
        return {table: connection.execute(text(f"SELECT COUNT(*) FROM {table}")).scalar_one()
                for table in LEDGER_TABLES}


class NothingChanged:
    """``with nothing_changed(services, emulator): ...``: the ledger and Kraty are as they were."""

    def __init__(self, services, emulator):
        self.services, self.emulator = services, emulator

    def __enter__(self):
        self.ledger = ledger_snapshot(self.services)
        self.kraty = self.emulator.ledger()
        return self

    def __exit__(self, *exc):
        if exc[0] is not None:
            return False
        assert ledger_snapshot(self.services) == self.ledger, "the ledger changed"
        assert self.emulator.ledger() == self.kraty, "Kraty's ledger changed"
        return False


def nothing_changed(services, emulator) -> NothingChanged:
    return NothingChanged(services, emulator)


def assert_error_entity(response, status: int, code: int | None = None) -> dict:
    """A 4xx AccelByte ErrorEntity answer, with a request id header."""
    assert response.status_code == status, (response.status_code, response.get_data(as_text=True))
    assert response.mimetype == "application/json"
    assert response.headers.get("X-Request-Id")
    body = response.get_json()
    assert isinstance(body, dict), body
    assert set(body) <= {"errorCode", "errorMessage", "messageVariables"}, body
    assert type(body["errorCode"]) is int and isinstance(body["errorMessage"], str) and body["errorMessage"]
    if code is not None:
        assert body["errorCode"] == code, body
    if "messageVariables" in body:
        assert all(isinstance(k, str) and isinstance(v, str) for k, v in body["messageVariables"].items())
    return body


def assert_not_settled(response, *transaction_ids: str) -> dict:
    """The "not settled yet" answer: 503, an ErrorEntity 20000 naming the orders, and Retry-After."""
    body = assert_error_entity(response, 503, 20000)
    assert int(response.headers["Retry-After"]) >= 1
    assert body["messageVariables"]["transactionId"] == ", ".join(transaction_ids)
    assert "not settled yet" in body["errorMessage"]
    return body


def put_json(client, path, body, headers=None, content_type="application/json"):
    data = body if isinstance(body, bytes) else json.dumps(body)
    return client.put(path, data=data, headers=headers or AUTH, content_type=content_type)


def ledger_by_key(emulator, player="player-1") -> dict:
    """Kraty ledger entries per idempotency key."""
    out: dict[str, list] = {}
    for entry in emulator.ledger(player=player):
        out.setdefault(entry["idempotencyKey"], []).append(entry)
    return out


def balances(emulator, player="player-1") -> dict:
    """(wallet, inventory) of a player in Kraty; empty dicts for an unknown player."""
    response = emulator.session.get(f"{emulator.url}/_emulator/players/demo/{player}")
    if response.status_code == 404:
        return {}, {}
    data = response.json()
    return data["wallet"], data["inventory"]


def kraty_call(emulator, path: str, body: dict) -> requests.Response:
    """Call the emulator's server API directly (as the game would), with the demo server key."""
    return emulator.session.post(f"{emulator.url}/server/v1{path}", json=body,
                                 headers={"Authorization": f"Bearer {KRATY_SERVER_KEY}"})


def result_path(user="player-1", txn="txn-1", ns="demo", version=2, action=""):
    return fulfil_path(user, txn, ns, version) + (f"/{action}" if action else "")


def query_path(ns="demo"):
    return f"/platform/v2/admin/namespaces/{ns}/fulfillments"


# ---------------------------------------------------------------- config variants
def write_catalog_variant(source: str, target: Path, *, policy: str | None = None, other_game: bool = False) -> str:
    """A copy of the test catalog, with another negative_balance_policy and/or a second game ``other``."""
    text_ = Path(source).read_text()
    if policy:
        assert 'negative_balance_policy = "fail"' in text_
        text_ = text_.replace('negative_balance_policy = "fail"', f'negative_balance_policy = "{policy}"')
    if other_game:
        text_ += "\n" + Path(source).read_text().replace("[games.demo", "[games.other")
    target.write_text(text_)
    return str(target)


def write_storefronts(target: Path) -> str:
    """demo_store (demo only, the demo token), other_store (other only), both_store (both games)."""
    target.write_text(f"""
[storefronts.demo_store]
token_sha256 = "{hash_token('demo-storefront-token')}"
namespaces = ["demo"]

[storefronts.other_store]
token_sha256 = "{hash_token(OTHER_TOKEN)}"
namespaces = ["other"]

[storefronts.both_store]
token_sha256 = ["{hash_token('rotated-out-token')}", "{hash_token(BOTH_TOKEN)}"]
namespaces = ["demo", "other"]
""")
    return str(target)


@pytest.fixture
def make_app(app, settings_overrides, app_cache):
    """Another app on the same (already cleaned) database and Redis; jobs run in the last one built. Built once
    per settings, with new services per test (tests/support/app_cache.py); never an app this test already has."""
    built = []

    def make(**overrides):
        other = app_cache.app({**settings_overrides, **overrides}, besides=(app, *built))
        runtime.use(other)
        built.append(other)
        return other

    yield make
    runtime.use(app)
    for other in built:
        other.extensions["kraty_bridge"].close()


@pytest.fixture
def two_games_app(make_app, catalog_path, shared_files):
    """An app whose catalog has the games demo and other, with three storefronts (see write_storefronts)."""
    catalog = write_catalog_variant(catalog_path, shared_files / "catalog-two-games.toml", other_game=True)
    storefronts = write_storefronts(shared_files / "storefronts.toml")
    return make_app(catalog_path=catalog, storefronts_path=storefronts)
