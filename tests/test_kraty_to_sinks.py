"""End to end over real HTTP: the Kraty emulator credits a player and sends its signed webhook to the bridge
(served on loopback), a worker passes it on, and the sink server receives it signed by the bridge. Then the
emulator merges a guest and deletes a player, and the bridge follows both."""
from __future__ import annotations

import pytest
from sqlalchemy import select

from middleware.ledger import repository as repo
from middleware.ledger.models import Erasure

from tests.conftest import Served
from tests.support.orders_flow import drain, poll, put_order
from tests.support.sink_receiver import KRATY_SECRET, all_sink_overrides, server  # noqa: F401  (fixture)


@pytest.fixture
def settings_overrides(settings_overrides, server, tmp_path, catalog_path):
    return all_sink_overrides(settings_overrides, server, tmp_path, catalog_path, environments=False)


@pytest.fixture
def bridge(app, emulator):
    served = Served(app)
    emulator.session.put(f"{emulator.url}/_emulator/webhooks/config",
                         json={"url": f"{served.url}/webhooks/kraty", "secret": KRATY_SECRET, "game": "demo"}
                         ).raise_for_status()
    yield served
    emulator.session.put(f"{emulator.url}/_emulator/webhooks/config", json={"url": "", "secret": "", "game": "demo"})
    served.stop()


def sink_got(server, redis, type_: str, player: str) -> list[dict]:
    drain(redis)
    return [got.json for got in server.got("/all")
            if got.verified and got.json["type"] == type_ and got.json["playerId"] == player]


def test_emulator_credit_reaches_the_sink_through_the_bridge(client, services, redis, emulator, server, bridge):
    assert put_order(client, [{"itemSku": "gems_100", "quantity": 2}], user="e2e-1", txn="t-e2e").status_code == 200
    wallet = poll(lambda: sink_got(server, redis, "wallet.changed", "e2e-1"),
                  what="Kraty's wallet.changed to reach the sink")
    assert wallet[0]["data"]["source"] == "kraty" and wallet[0]["data"]["data"]["delta"] == 200
    assert wallet[0]["data"]["data"]["sourceRefId"] == "t-e2e"
    purchase = sink_got(server, redis, "purchase.fulfilled", "e2e-1")
    assert purchase and purchase[0]["data"]["transactionId"] == "t-e2e"
    with services.session() as session:   # and the order notes Kraty's confirmation
        f = repo.load(session, repo.find(session, "demo", "accelbyte", "t-e2e").id, history=True)
        assert any(h.detail and h.detail.get("confirmed_by_kraty") == "wallet.changed" for h in f.history)


def test_emulator_merge_and_delete_reach_the_ledger_and_the_sink(client, services, redis, emulator, server, bridge):
    put_order(client, [{"itemSku": "gems_100", "quantity": 1}], user="guest-9", txn="t-guest")
    kraty = services.kraty("demo")
    kraty.merge_players("guest-9", "auth-9")
    merged = poll(lambda: sink_got(server, redis, "player.merged", "auth-9"), what="player.merged at the sink")
    assert merged[0]["data"]["data"]["fromExternalPlayerId"] == "guest-9"
    with services.session() as session:
        assert repo.find(session, "demo", "accelbyte", "t-guest").player_id == "auth-9"

    kraty.delete_player("auth-9", "GDPR request")
    deleted = poll(lambda: sink_got(server, redis, "player.deleted", "auth-9"), what="player.deleted at the sink")
    assert len(deleted) == 1
    with services.session() as session:
        order = repo.find(session, "demo", "accelbyte", "t-guest")
        assert order.player_id.startswith("__deleted_") and order.state == "FULFILLED"
        assert session.scalars(select(Erasure)).one().placeholder == order.player_id
