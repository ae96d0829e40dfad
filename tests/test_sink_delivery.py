"""Delivering events to sinks: real HTTP on loopback (tests/support/sink_receiver.py), signatures checked by the
receiver, filters, the retry schedule driven by a controllable clock, Retry-After, 410, dead letters, replay,
the shared rate limit under concurrent workers, per-player sequence numbers and no head-of-line blocking."""
from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone

import pytest
from redis import Redis
from redis.backoff import NoBackoff
from redis.retry import Retry
from rq import SimpleWorker
from sqlalchemy import func, select

from config.settings import ROOT
from config.sinks import DEFAULT_SCHEDULE, Sink, Sinks
from middleware.ledger.models import Delivery, OutboundEvent, SinkState, utcnow
from middleware.sinks import emit, enqueue_new
from middleware.sinks.http import retry_after_seconds
from middleware.sinks.delivery import deliver_now, reconcile_deliveries
from workers.queues import SINK_QUEUE, queue

from tests.support.orders_flow import drain, poll
from tests.support.sink_receiver import ANALYTICS_SECRET, CRM_SECRET, HANG, server  # noqa: F401  (fixture)

# the controllable clock starts tomorrow at 10:00 UTC: after every delivery's first due time (real now), whatever
# the day the tests run
T0 = (datetime.now(timezone.utc) + timedelta(days=1)).replace(hour=10, minute=0, second=0, microsecond=0)


@pytest.fixture
def settings_overrides(settings_overrides, server, tmp_path):
    path = tmp_path / "sinks.toml"
    path.write_text(f"""
[sinks.crm]
url = "{server.url}/crm"
secret = "{CRM_SECRET}"
headers = {{ "X-Api-Key" = "crm-key-1" }}
events = ["purchase.*"]
timeout = 0.5

[sinks.analytics]
url = "{server.url}/analytics"
secret = "{ANALYTICS_SECRET}"
environments = ["production", "sandbox"]
timeout = 0.5
""")
    return {**settings_overrides, "sinks_path": str(path)}


def record(services, type="purchase.completed", player="p-1", environment="production", namespace="demo",
           payload=None, enqueue=True) -> list[str]:
    with services.session() as session:
        ids = emit(session, type, namespace, player, environment, T0, payload or {"sku": "gems_100"},
                   sinks=services.sinks)
        session.commit()
    if enqueue:
        enqueue_new(services.jobs, ids)
    return ids


def delivery(services, delivery_id) -> Delivery:
    with services.session() as session:
        d = session.get(Delivery, delivery_id)
        session.expunge(d)
        return d


def only_sink(services, server, **fields) -> Sink:
    """Replace the configured sinks by one ``crm`` sink with these fields."""
    sink = Sink(**{"name": "crm", "type": "http", "url": f"{server.url}/crm", "secret": CRM_SECRET,
                   "timeout": 0.5, **fields})
    services.sinks = Sinks([sink])
    return sink


def scheduled_in(redis, job_prefix: str, now: float) -> list[float]:
    registry = queue(redis, SINK_QUEUE).scheduled_job_registry
    return sorted(registry.get_scheduled_time(j).timestamp() - now for j in registry.get_job_ids()
                  if j.startswith(job_prefix))


# ---------------------------------------------------------------- delivering
def test_a_delivery_is_signed_and_carries_the_event(services, redis, server):
    crm_id, analytics_id = record(services, payload={"sku": "gems_100", "amount": 499})
    drain(redis)
    assert delivery(services, crm_id).state == "delivered" and delivery(services, analytics_id).state == "delivered"
    [got] = server.got("/crm")
    assert got.verified and got.headers["X-Api-Key"] == "crm-key-1"
    assert got.headers["Content-Type"] == "application/json"
    body = got.json
    assert body["id"] == got.headers["Webhook-Id"] and body["id"].startswith("evt_")
    assert body["type"] == "purchase.completed" and body["timestamp"] == f"{T0:%Y-%m-%d}T10:00:00.000Z"
    assert (body["namespace"], body["environment"], body["playerId"], body["playerSequence"]) == (
        "demo", "production", "p-1", 1)
    assert body["data"] == {"sku": "gems_100", "amount": 499}
    [other] = server.got("/analytics")
    assert other.verified and "X-Api-Key" not in other.headers and other.json["id"] == body["id"]
    d = delivery(services, crm_id)
    assert d.attempts == 1 and d.last_status == 200 and d.delivered_at is not None


def test_filters_by_type_and_environment(services, redis, server):
    assert len(record(services, "purchase.completed")) == 2
    assert len(record(services, "wallet.changed")) == 1          # crm takes purchase.* only
    assert len(record(services, "purchase.completed", environment="sandbox")) == 1  # crm drops sandbox
    drain(redis)
    assert server.count("/crm") == 1 and server.count("/analytics") == 3
    assert {r.json["environment"] for r in server.got("/analytics")} == {"production", "sandbox"}
    services.sinks = Sinks([s for s in services.sinks if s.name == "crm"])
    assert record(services, "wallet.changed") == []               # no sink wants it: nothing is stored
    with services.session() as session:
        assert session.scalar(select(func.count()).select_from(OutboundEvent)) == 3


def test_player_sequence_numbers_increase_per_player_and_namespace(services, redis, server):
    only_sink(services, server)
    for player in ("p-1", "p-2", "p-1", "p-1", "p-2"):
        record(services, player=player)
    record(services, player="p-1", namespace="other")
    record(services, player=None)
    drain(redis)
    seqs = {}
    for got in server.got("/crm"):
        body = got.json
        seqs.setdefault((body["namespace"], body["playerId"]), []).append(body["playerSequence"])
    assert sorted(seqs[("demo", "p-1")]) == [1, 2, 3] and sorted(seqs[("demo", "p-2")]) == [1, 2]
    assert seqs[("other", "p-1")] == [1] and seqs[("demo", None)] == [None]


# ---------------------------------------------------------------- the retry schedule, on a controllable clock
def test_retries_follow_the_schedule_then_dead_letter(services, redis, server, caplog):
    only_sink(services, server)
    server.always(500)
    [delivery_id] = record(services, enqueue=False)
    now = T0
    assert deliver_now(services, delivery_id, now=now) == "failed"
    for attempt, delay in enumerate(DEFAULT_SCHEDULE[1:], start=2):
        d = delivery(services, delivery_id)
        assert d.attempts == attempt - 1 and d.last_status == 500 and d.last_error.startswith("HTTP 500")
        assert d.next_attempt_at == now + timedelta(seconds=delay)
        early = now + timedelta(seconds=delay / 2) if delay > 2 else None
        if early:  # a job that runs early sends nothing: it is put back until the attempt is due
            sent = server.count()
            assert deliver_now(services, delivery_id, now=early) == "early" and server.count() == sent
        now = d.next_attempt_at
        with caplog.at_level(logging.ERROR, logger="middleware.sinks.delivery"):
            state = deliver_now(services, delivery_id, now=now)
        assert state == ("dead" if attempt == len(DEFAULT_SCHEDULE) else "failed")
    d = delivery(services, delivery_id)
    assert d.state == "dead" and d.attempts == 8 and d.next_attempt_at is None
    assert server.count("/crm") == 8 and all(r.verified for r in server.got())
    assert len({r.headers["Webhook-Id"] for r in server.got()}) == 1  # the same webhook-id on every attempt
    assert "dead-lettered after 8 attempts" in caplog.text
    assert deliver_now(services, delivery_id, now=now + timedelta(days=1)) == "dead" and server.count() == 8


def test_a_failed_attempt_enqueues_the_next_one_with_its_delay(services, redis, server):
    only_sink(services, server, schedule=(0, 300))
    server.always(503)
    [delivery_id] = record(services, enqueue=False)
    assert deliver_now(services, delivery_id) == "failed"
    [delay] = scheduled_in(redis, f"deliver-{delivery_id}-2", time.time())
    assert 295 < delay <= 300


def test_retry_after_is_honoured_never_sooner(services, redis, server):
    only_sink(services, server)
    server.answer((429, {"Retry-After": "120"}), (503, {"Retry-After": "1"}))
    [delivery_id] = record(services, enqueue=False)
    assert deliver_now(services, delivery_id, now=T0) == "failed"
    d = delivery(services, delivery_id)
    assert d.last_status == 429 and d.next_attempt_at == T0 + timedelta(seconds=120)  # the schedule said 5 s
    assert deliver_now(services, delivery_id, now=d.next_attempt_at) == "failed"
    d2 = delivery(services, delivery_id)
    assert d2.next_attempt_at == d.next_attempt_at + timedelta(seconds=300)  # Retry-After 1 < the schedule's 300
    assert deliver_now(services, delivery_id, now=d2.next_attempt_at) == "delivered"


def test_retry_after_as_an_http_date():
    now = datetime(2026, 11, 21, 10, 0, 0, tzinfo=timezone.utc)
    assert retry_after_seconds("Sat, 21 Nov 2026 10:02:00 GMT", now) == 120
    assert retry_after_seconds("Sat, 21 Nov 2026 09:00:00 GMT", now) == 0
    assert retry_after_seconds("soon", now) is None and retry_after_seconds(None) is None


def test_a_hanging_receiver_times_out_and_is_retried(services, redis, server):
    only_sink(services, server, timeout=0.3)
    server.answer(HANG)
    [delivery_id] = record(services, enqueue=False)
    assert deliver_now(services, delivery_id, now=T0) == "failed"
    d = delivery(services, delivery_id)
    assert d.last_status is None and "timed out" in d.last_error and d.lease_until is None
    assert deliver_now(services, delivery_id, now=d.next_attempt_at) == "delivered"


# ---------------------------------------------------------------- 410, replay
def test_410_disables_the_sink_and_says_so(services, redis, server, runner, caplog):
    only_sink(services, server)
    server.always(500)
    waiting = record(services, enqueue=False)[0]
    deliver_now(services, waiting, now=T0)                       # failed, a retry scheduled
    server.always(410)
    [gone] = record(services, enqueue=False)
    with caplog.at_level(logging.ERROR, logger="middleware.sinks.delivery"):
        assert deliver_now(services, gone, now=T0) == "disabled"
    assert "sink crm DISABLED" in caplog.text and "410 Gone" in caplog.text
    assert delivery(services, waiting).state == "disabled"       # stopped too
    assert record(services, enqueue=False) == []                 # new ones are kept, not sent
    with services.session() as session:
        assert session.get(SinkState, "crm").disabled_at is not None
        assert session.scalar(select(func.count()).select_from(Delivery).where(Delivery.state == "disabled")) == 3
    assert "DISABLED since" in runner.invoke(args=["sinks", "list"]).output
    assert "disabled" in runner.invoke(args=["sinks", "replay", "--sink", "crm", "--since", "2000-01-01", "--reason", "test"]).output
    sent = server.count()
    server.always(200)
    assert runner.invoke(args=["sinks", "enable", "crm", "--reason", "test"]).output.strip() == "sink crm enabled"
    result = runner.invoke(args=["sinks", "replay", "--sink", "crm", "--since", "2000-01-01T00:00:00Z", "--reason", "test"])
    assert result.exit_code == 0 and "3 deliveries replayed" in result.output
    drain(redis)
    assert server.count() == sent + 3
    with services.session() as session:
        assert set(session.scalars(select(Delivery.state))) == {"delivered"}


def test_replay_one_dead_delivery_and_everything_dead_since_a_time(services, redis, server, runner):
    only_sink(services, server, schedule=(0, 0))
    server.always(500)
    first, second, third = (record(services, enqueue=False)[0] for _ in range(3))
    for delivery_id in (first, second, third):
        deliver_now(services, delivery_id, now=T0)
        assert deliver_now(services, delivery_id, now=T0) == "dead"
    server.always(200)
    assert runner.invoke(args=["sinks", "replay", first, "--reason", "test"]).output.strip() == "1 delivery replayed"
    drain(redis)
    assert delivery(services, first).state == "delivered" and delivery(services, second).state == "dead"
    got = server.got()
    assert got[-1].headers["Webhook-Id"] == got[0].headers["Webhook-Id"] and got[-1].verified
    assert "is delivered" not in runner.invoke(args=["sinks", "replay", first, "--reason", "test"]).output  # delivered: sent again
    drain(redis)
    bad = runner.invoke(args=["sinks", "replay", "--sink", "crm", "--reason", "test"])
    assert bad.exit_code != 0 and "--since" in bad.output
    future = (utcnow() + timedelta(hours=1)).isoformat()
    assert "0 deliveries replayed" in runner.invoke(args=["sinks", "replay", "--sink", "crm", "--since", future, "--reason", "test"]).output
    result = runner.invoke(args=["sinks", "replay", "--sink", "crm", "--since", "2000-01-01T00:00:00+00:00", "--reason", "test"])
    assert "2 deliveries replayed" in result.output
    drain(redis)
    assert {delivery(services, i).state for i in (first, second, third)} == {"delivered"}
    listing = runner.invoke(args=["sinks", "deliveries", "--sink", "crm", "--state", "delivered"]).output
    assert all(i in listing for i in (first, second, third))
    missing = runner.invoke(args=["sinks", "replay", "nope", "--reason", "test"])
    assert missing.exit_code != 0 and "no delivery nope" in missing.output


# ---------------------------------------------------------------- no head-of-line blocking, reconciler
def test_a_failing_player_never_blocks_the_others(services, redis, server):
    only_sink(services, server)
    server.fail_player("bad")
    ids = {player: [record(services, player=player)[0] for _ in range(3)] for player in ("bad", "good")}
    SimpleWorker([queue(redis, SINK_QUEUE)], connection=redis).work(burst=True, logging_level="WARNING")
    assert {delivery(services, i).state for i in ids["good"]} == {"delivered"}
    assert {delivery(services, i).state for i in ids["bad"]} == {"failed"}
    assert [r.json["playerSequence"] for r in server.got() if r.json["playerId"] == "good"] == [1, 2, 3]


def test_the_reconciler_enqueues_deliveries_whose_job_was_lost(services, redis, server):
    only_sink(services, server)
    [delivery_id] = record(services, enqueue=False)              # as if Redis was down after the commit
    assert reconcile_deliveries(services, stale_seconds=0) == 1
    assert reconcile_deliveries(services, stale_seconds=0) == 0  # its job is waiting
    drain(redis)
    assert delivery(services, delivery_id).state == "delivered"
    assert reconcile_deliveries(services, stale_seconds=0) == 0


def test_redis_down_after_the_commit_loses_nothing(services, server, monkeypatch):
    only_sink(services, server)
    [delivery_id] = record(services, enqueue=False)
    down = Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2, retry=Retry(NoBackoff(), 0))
    monkeypatch.setattr(services, "_redis", down)   # svc.jobs enqueues on services.redis
    assert enqueue_new(services.jobs, [delivery_id]) == 0
    monkeypatch.undo()
    assert delivery(services, delivery_id).state == "pending"


# ---------------------------------------------------------------- the rate limit, shared by concurrent workers
@pytest.mark.processes
def test_rate_limit_holds_across_four_concurrent_workers(services, redis, server, tmp_path, database_url,
                                                         redis_url, catalog_path):
    """Four real worker processes (``python -m workers``, each with RQ's scheduler) share one sink's limit."""
    limit, window, events = 3, 2.0, 9
    sink = only_sink(services, server, rate_limit=limit, rate_window=window)
    sinks_file = tmp_path / "sinks.toml"
    sinks_file.write_text(f'[sinks.crm]\nurl = "{sink.url}"\nsecret = "{CRM_SECRET}"\ntimeout = 2\n'
                          f'rate_limit = {limit}\nrate_window = {window}\n')
    ids = [record(services, player=f"p-{n}", enqueue=False)[0] for n in range(events)]
    env = dict(os.environ, KB_DATABASE_URL=database_url, KB_REDIS_URL=redis_url, KB_CATALOG=catalog_path,
               KB_SINKS=str(sinks_file), KB_LOG_LEVEL="WARNING", PYTHONPATH=str(ROOT))
    workers = []
    for n in range(4):
        with open(tmp_path / f"worker-{n}.log", "wb") as log:   # the child keeps its own copy of the descriptor
            workers.append(subprocess.Popen([sys.executable, "-m", "workers"], cwd=ROOT, env=env,
                                            start_new_session=True, stdout=subprocess.DEVNULL, stderr=log))
    try:
        enqueue_new(services.jobs, ids)
        assert poll(lambda: len(server.got()) >= events and all(
            delivery(services, i).state == "delivered" for i in ids), timeout=90,
            what="every delivery to arrive"), [(tmp_path / f"worker-{n}.log").read_text()[-2000:] for n in range(4)]
    finally:
        for proc in workers:
            os.killpg(proc.pid, signal.SIGTERM)
        for proc in workers:
            proc.wait(30)
    arrivals = sorted(r.at for r in server.got())
    assert len(arrivals) == events
    # the limiter counts request starts in the Redis server's clock; each arrives a little later, so the check
    # allows a quarter of the window for one request's transit on a loaded machine (without a limit, all nine
    # would arrive within a fraction of a second)
    for first, later in zip(arrivals, arrivals[limit:]):
        assert later - first >= window * 0.75, (later - first)
    assert {delivery(services, i).attempts for i in ids} == {1}  # waiting for the limit is not an attempt


def test_a_delivery_to_a_sink_no_longer_configured_is_dead_lettered(services, server):
    [delivery_id] = record(services, "wallet.changed", enqueue=False)   # analytics only
    services.sinks = Sinks([s for s in services.sinks if s.name == "crm"])
    assert deliver_now(services, delivery_id) == "dead"
    assert delivery(services, delivery_id).last_error == "sink analytics is no longer configured"
    assert server.count() == 0
