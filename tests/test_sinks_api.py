"""/v1/sinks: listing sinks and deliveries, replaying dead letters (one, or a sink's since a time), enabling a
sink disabled by a 410 — and what each bad request gets."""
from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from middleware.ledger import api_keys
from middleware.ledger.models import AuditEntry, Delivery, utcnow

from tests.support.orders_flow import drain, put_order
from tests.support.sink_receiver import CRM_SECRET, server  # noqa: F401  (fixture)


@pytest.fixture
def settings_overrides(settings_overrides, server, tmp_path):
    sinks = tmp_path / "sinks.toml"
    sinks.write_text(f'[sinks.crm]\nurl = "{server.url}/crm"\nsecret = "{CRM_SECRET}"\nschedule = [0]\ntimeout = 2\n')
    return {**settings_overrides, "sinks_path": str(sinks)}


def key(services, role: str) -> dict:
    with services.session() as session:
        made = api_keys.create(session, f"{role}-{utcnow().timestamp()}", role)
        session.commit()
    return {"Authorization": f"Bearer {made}"}


def test_list_and_replay_one_dead_letter(client, services, redis, server):
    viewer, operator = key(services, "viewer"), key(services, "operator")
    server.always(500)
    put_order(client, [{"itemSku": "gems_100", "quantity": 1}], txn="t-dead")
    drain(redis)
    listed = client.get("/v1/sinks", headers=viewer)
    assert listed.status_code == 200
    assert listed.json == [{"name": "crm", "type": "http", "events": ["*"], "environments": ["production"],
                            "enabled": True, "disabledReason": None, "deliveries": {"dead": 1}}]
    dead = client.get("/v1/sinks/crm/deliveries?state=dead", headers=viewer).json
    assert len(dead) == 1 and dead[0]["eventType"] == "purchase.fulfilled" and dead[0]["lastStatus"] == 500

    server.always(200)
    replayed = client.post(f"/v1/sinks/crm/deliveries/{dead[0]['id']}/replay", json={"reason": "CRM fixed"},
                           headers=operator)
    assert replayed.status_code == 200 and replayed.json == {"replayed": 1, "deliveryIds": [dead[0]["id"]]}
    drain(redis)
    assert len([g for g in server.got("/crm") if g.verified]) == 2   # the failed attempt, then the replay
    with services.session() as session:
        assert session.get(Delivery, dead[0]["id"]).state == "delivered"
        audit = session.scalars(select(AuditEntry)).one()
    assert (audit.action, audit.target_id, audit.reason, audit.actor.startswith("key:operator")) == \
        ("sink.replay", dead[0]["id"], "CRM fixed", True)


def test_replay_everything_dead_since_a_time(client, services, redis, server):
    server.always(500)
    for n in range(3):
        put_order(client, [{"itemSku": "gems_100", "quantity": 1}], txn=f"t-dead-{n}")
    drain(redis)
    server.always(200)
    since = (utcnow() - timedelta(minutes=5)).isoformat()
    answer = client.post("/v1/sinks/crm/replay", json={"since": since, "reason": "outage over"},
                         headers=key(services, "operator"))
    assert answer.status_code == 200 and answer.json["replayed"] == 3
    drain(redis)
    with services.session() as session:
        assert {d.state for d in session.scalars(select(Delivery))} == {"delivered"}
    again = client.post("/v1/sinks/crm/replay", json={"since": since, "reason": "again"},
                        headers=key(services, "operator"))
    assert again.json["replayed"] == 0    # nothing dead any more


def test_enable_after_410(client, services, redis, server):
    server.always(410)
    put_order(client, [{"itemSku": "gems_100", "quantity": 1}], txn="t-gone")
    drain(redis)
    operator = key(services, "operator")
    assert client.get("/v1/sinks", headers=operator).json[0]["enabled"] is False
    blocked = client.post("/v1/sinks/crm/replay", json={"since": "2026-01-01T00:00:00Z", "reason": "x"},
                          headers=operator)
    assert blocked.status_code == 409 and "enable it first" in blocked.json["error"]["message"]
    assert client.post("/v1/sinks/crm/enable", json={"reason": "endpoint back"}, headers=operator).status_code == 200
    twice = client.post("/v1/sinks/crm/enable", json={"reason": "again"}, headers=operator)
    assert twice.status_code == 409 and twice.json["error"]["details"] == {"state": "enabled"}


def test_replay_since_a_time_to_come_replays_nothing(client, services, redis, server):
    """Schema-valid, so accepted (the OpenAPI description cannot say "not in the future"): nothing was recorded
    since then."""
    server.always(500)
    put_order(client, [{"itemSku": "gems_100", "quantity": 1}], txn="t-dead")
    drain(redis)
    answer = client.post("/v1/sinks/crm/replay", json={"since": "2999-01-01T00:00:00Z", "reason": "x"},
                         headers=key(services, "operator"))
    assert answer.status_code == 200 and answer.json == {"replayed": 0, "deliveryIds": []}


@pytest.mark.parametrize("case, status, code", [
    ("no key", 401, "unauthenticated"),
    ("viewer replays", 403, "forbidden"),
    ("unknown sink", 404, "not_found"),
    ("unknown delivery", 404, "not_found"),
    ("missing reason", 422, "validation_failed"),
    ("empty reason", 422, "validation_failed"),
    ("since without timezone", 422, "validation_failed"),
    ("since unparseable", 422, "validation_failed"),
    ("unknown field", 422, "validation_failed"),
    ("unknown filter", 422, "validation_failed"),
    ("bad state filter", 422, "validation_failed"),
    ("limit out of range", 422, "validation_failed"),
    ("still scheduled", 409, "cannot_replay"),
])
def test_bad_requests(client, services, redis, server, case, status, code):
    operator, viewer = key(services, "operator"), key(services, "viewer")
    server.always(503)
    put_order(client, [{"itemSku": "gems_100", "quantity": 1}], txn="t-1")   # its delivery: pending, not yet sent
    with services.session() as session:
        pending = session.scalars(select(Delivery)).one().id
    requests = {
        "no key": ("get", "/v1/sinks", None, {}),
        "viewer replays": ("post", f"/v1/sinks/crm/deliveries/{pending}/replay", {"reason": "x"}, viewer),
        "unknown sink": ("get", "/v1/sinks/nope/deliveries", None, viewer),
        "unknown delivery": ("post", "/v1/sinks/crm/deliveries/nope/replay", {"reason": "x"}, operator),
        "missing reason": ("post", f"/v1/sinks/crm/deliveries/{pending}/replay", {}, operator),
        "empty reason": ("post", f"/v1/sinks/crm/deliveries/{pending}/replay", {"reason": ""}, operator),
        "since without timezone": ("post", "/v1/sinks/crm/replay", {"since": "2026-01-01T00:00:00", "reason": "x"},
                                   operator),
        "since unparseable": ("post", "/v1/sinks/crm/replay", {"since": "yesterday", "reason": "x"}, operator),
        "unknown field": ("post", "/v1/sinks/crm/replay", {"since": "2026-01-01T00:00:00Z", "reason": "x",
                                                           "all": True}, operator),
        "unknown filter": ("get", "/v1/sinks/crm/deliveries?colour=red", None, viewer),
        "bad state filter": ("get", "/v1/sinks/crm/deliveries?state=lost", None, viewer),
        "limit out of range": ("get", "/v1/sinks/crm/deliveries?limit=0", None, viewer),
        "still scheduled": ("post", f"/v1/sinks/crm/deliveries/{pending}/replay", {"reason": "x"}, operator),
    }
    method, path, body, headers = requests[case]
    answer = getattr(client, method)(path, json=body, headers=headers)
    assert answer.status_code == status and answer.json["error"]["code"] == code, answer.json
    with services.session() as session:
        assert session.scalars(select(AuditEntry)).all() == []   # a refused request changes nothing
        assert session.get(Delivery, pending).state == "pending"


def test_the_cli_replays_and_enables_with_a_reason_and_audits(app, services, redis, server):
    server.always(410)
    put_order(app.test_client(), [{"itemSku": "gems_100", "quantity": 1}], txn="t-cli")
    drain(redis)
    runner = app.test_cli_runner()
    missing = runner.invoke(args=["sinks", "enable", "crm"])
    assert missing.exit_code == 2 and "--reason" in missing.output
    assert runner.invoke(args=["sinks", "enable", "crm", "--reason", "endpoint back"]).exit_code == 0
    server.always(200)
    done = runner.invoke(args=["sinks", "replay", "--sink", "crm", "--since", "2000-01-01T00:00:00Z",
                               "--reason", "after the outage"])
    assert done.exit_code == 0 and "1 delivery replayed" in done.output
    with services.session() as session:
        entries = session.scalars(select(AuditEntry).order_by(AuditEntry.id)).all()
    assert [(e.action, e.reason, e.actor.startswith("cli:")) for e in entries] == [
        ("sink.enable", "endpoint back", True), ("sink.replay_since", "after the outage", True)]


def test_a_replay_while_redis_is_down_is_committed_and_enqueued_later(client, services, redis, server):
    from redis import Redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    from middleware.sinks.delivery import reconcile_deliveries
    server.always(500)
    put_order(client, [{"itemSku": "gems_100", "quantity": 1}], txn="t-down")
    drain(redis)
    with services.session() as session:
        dead = session.scalars(select(Delivery)).one().id
    operator = key(services, "operator")
    up, services._redis = services.redis, Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2,
                                                 retry=Retry(NoBackoff(), 0))
    try:
        answer = client.post(f"/v1/sinks/crm/deliveries/{dead}/replay", json={"reason": "retry"},
                             headers=operator)
    finally:
        services._redis = up
    assert answer.status_code == 200 and answer.json["replayed"] == 1
    with services.session() as session:
        assert session.get(Delivery, dead).state == "pending"       # committed, due now
    server.always(200)
    assert reconcile_deliveries(services, stale_seconds=0) == 1       # the reconciler enqueues it
    drain(redis)
    with services.session() as session:
        assert session.get(Delivery, dead).state == "delivered"
