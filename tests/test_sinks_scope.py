"""/v1/sinks for a key limited to some games (issue 13 item 8): it sees, counts and replays only the
deliveries of its games' events, and may not enable a sink (which serves every game)."""
from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from middleware.ledger.models import Delivery, utcnow

from tests.support.orders_flow import drain, put_order
from tests.support.ops_ledger import key
from tests.support.accelbyte import BOTH_TOKEN, make_app, two_games_app  # noqa: F401  (fixtures)
from tests.test_sinks_api import server, settings_overrides  # noqa: F401  (fixtures: a crm sink, one attempt)

GEMS = [{"itemSku": "gems_100", "quantity": 1}]
BOTH = {"Authorization": f"Bearer {BOTH_TOKEN}"}


@pytest.fixture
def dead(two_games_app, services, redis, server):
    """One dead-lettered delivery per game: demo's for player-demo, other's for player-other."""
    server.always(500)
    client = two_games_app.test_client()
    for ns in ("demo", "other"):
        assert put_order(client, GEMS, user=f"player-{ns}", txn=f"t-{ns}", ns=ns, headers=BOTH).status_code == 200
    drain(redis)
    return client


def test_a_key_limited_to_one_game_sees_only_its_deliveries(dead, services):
    demo_viewer, viewer = key(services, "viewer", ["demo"]), key(services, "viewer")
    everything = dead.get("/v1/sinks/crm/deliveries", headers=viewer).json
    assert sorted(d["playerId"] for d in everything) == ["player-demo", "player-other"]
    mine = dead.get("/v1/sinks/crm/deliveries", headers=demo_viewer).json
    assert [d["playerId"] for d in mine] == ["player-demo"]
    assert dead.get("/v1/sinks", headers=demo_viewer).json[0]["deliveries"] == {"dead": 1}
    assert dead.get("/v1/sinks", headers=viewer).json[0]["deliveries"] == {"dead": 2}


def test_a_key_limited_to_one_game_replays_only_its_deliveries(dead, services, server):
    demo_operator = key(services, "operator", ["demo"])
    rows = dead.get("/v1/sinks/crm/deliveries", headers=key(services, "viewer")).json
    theirs = next(d["id"] for d in rows if d["playerId"] == "player-other")
    refused = dead.post(f"/v1/sinks/crm/deliveries/{theirs}/replay", json={"reason": "x"}, headers=demo_operator)
    assert refused.status_code == 404 and refused.json["error"]["code"] == "not_found"
    server.always(200)
    since = (utcnow() - timedelta(minutes=5)).isoformat()
    replayed = dead.post("/v1/sinks/crm/replay", json={"since": since, "reason": "CRM back"}, headers=demo_operator)
    assert replayed.status_code == 200 and replayed.json["replayed"] == 1
    with services.session() as session:
        states = {d.id: d.state for d in session.scalars(select(Delivery))}
    assert states[theirs] == "dead" and list(states.values()).count("pending") == 1


def test_a_key_limited_to_one_game_may_not_enable_a_sink(dead, services):
    answer = dead.post("/v1/sinks/crm/enable", json={"reason": "x"}, headers=key(services, "operator", ["demo"]))
    assert answer.status_code == 403 and answer.json["error"]["code"] == "forbidden"
    everyone = dead.post("/v1/sinks/crm/enable", json={"reason": "x"}, headers=key(services, "operator"))
    assert everyone.status_code == 409  # allowed; the sink simply is not disabled
