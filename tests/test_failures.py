"""Failures: a worker killed mid-attempt, Redis down at ingest, Kraty failing for a while, racing PUTs."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, update

from app import create_app
from config.settings import ROOT
from middleware.ledger import states
from middleware.ledger.models import Fulfilment, utcnow
from workers import due
from workers.queues import FULFILMENT_QUEUE, QUEUES, is_waiting, queue
from middleware.orders.reconciler import reconcile_now

from tests.support.orders_flow import drain, make_due, poll, put_order, release_scheduled

CREDIT = "/wallet/.*/credit"


def _fulfilment(services, txn="txn-1") -> Fulfilment:
    with services.session() as session:
        f = session.scalars(select(Fulfilment).where(Fulfilment.transaction_id == txn)).one()
        f.items, f.history  # load while attached
        return f


def _grant_entries(emulator, **filters):
    return [e for e in emulator.ledger(**filters) if e["kind"] in ("credit", "grant")]


def _env(settings_overrides, **extra):
    env = dict(os.environ)
    env.update(KB_DATABASE_URL=settings_overrides["database_url"], KB_REDIS_URL=settings_overrides["redis_url"],
               KB_CATALOG=settings_overrides["catalog_path"], KB_LOG_JSON="false", KB_LOG_LEVEL="WARNING",
               PYTHONPATH=str(ROOT))
    env.update(extra)
    return env


def _worker_killed_after_kraty_applied_the_credit(client, services, emulator, redis, settings_overrides):
    """An order whose worker died after Kraty applied its credit and before the worker's commit;
    the dead worker's lease has run out. Returns with no fault left in the emulator."""
    # The inline attempt meets a transient error, so the order goes to the worker queue.
    emulator.faults({"path": CREDIT, "status": 503, "count": 1})
    r = put_order(client, [{"itemSku": "gems_100", "quantity": 1}])
    assert r.status_code == 503 and "retrying" in r.get_json()["errorMessage"]  # not settled yet
    assert release_scheduled(redis) == 1

    # Kraty applies the credit, then answers slowly: the worker is killed while it waits.
    emulator.faults({"path": CREDIT, "latency_ms": 20000, "phase": "after", "count": 1})
    worker = subprocess.Popen([sys.executable, "-m", "workers", "--burst"], cwd=ROOT,
                              env=_env(settings_overrides, KB_KRATY_READ_TIMEOUT="30"),
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        poll(lambda: _grant_entries(emulator, player="player-1"), timeout=30, what="Kraty applied the credit")
    finally:
        worker.send_signal(signal.SIGKILL)
        worker.wait(10)
    emulator.clear_faults()
    f = _fulfilment(services)
    assert f.state == states.FULFILLING and f.items[0].state == states.ITEM_PENDING  # the commit never happened
    assert f.lease_owner is not None
    with services.session() as session:  # time passes: the dead worker's lease runs out
        session.execute(update(Fulfilment).values(lease_until=utcnow() - timedelta(seconds=1)))
        session.commit()


@pytest.mark.processes
def test_worker_killed_after_kraty_call_grants_exactly_once(client, services, emulator, redis, settings_overrides):
    _worker_killed_after_kraty_applied_the_credit(client, services, emulator, redis, settings_overrides)
    # The reconciler re-enqueues; a new worker finishes with the same idempotency key.
    queue(redis, FULFILMENT_QUEUE).empty()
    make_due(services)
    assert reconcile_now(services)["enqueued"] == 1
    drain(redis)

    f = _fulfilment(services)
    assert f.state == states.FULFILLED
    entries = _grant_entries(emulator, player="player-1")
    assert len(entries) == 1                          # granted exactly once
    assert f.items[0].kraty_entry_id == entries[0]["id"]  # the replay answered the first entry
    assert emulator.player("player-1")["wallet"]["gems"] == 100


def test_redis_down_at_ingest_records_answers_and_fulfils_later(settings_overrides, emulator, clean):
    down = create_app({**settings_overrides, "redis_url": "redis://127.0.0.1:1/0"})
    emulator.faults({"path": CREDIT, "status": 503, "count": 1})
    r = put_order(down.test_client(), [{"itemSku": "gems_100", "quantity": 1}])
    assert r.status_code == 503 and r.headers["Retry-After"]   # answered "not settled yet", not a 500
    svc_down = down.extensions["kraty_bridge"]
    f = _fulfilment(svc_down)
    assert f.state == states.FULFILLING and f.next_attempt_at is not None      # recorded, retry owed
    make_due(svc_down)                                                         # ... and now due
    svc_down.close()

    # Redis is back: the reconciler finds the order and a worker fulfils it.
    up = create_app(settings_overrides)
    from workers import runtime
    runtime.use(up)
    svc = up.extensions["kraty_bridge"]
    assert reconcile_now(svc)["enqueued"] == 1
    drain(svc.redis)
    assert _fulfilment(svc).state == states.FULFILLED
    assert len(_grant_entries(emulator, player="player-1")) == 1
    svc.close()


def test_redis_down_does_not_stop_a_healthy_ingest(settings_overrides, emulator, clean):
    down = create_app({**settings_overrides, "redis_url": "redis://127.0.0.1:1/0"})
    r = put_order(down.test_client(), [{"itemSku": "sword", "quantity": 2}])
    assert r.status_code == 200 and r.get_json()["state"] == "FULFILLED"
    assert down.test_client().get("/readyz").status_code == 503
    down.extensions["kraty_bridge"].close()


def test_kraty_500s_and_timeouts_then_recovery_one_grant_per_item(client, services, emulator, redis):
    # starter_pack: 2x gems_100 + sword + shield -> three Kraty calls
    emulator.faults(
        {"path": CREDIT, "status": 500, "count": 2},
        {"path": "/inventory/sword/grant", "latency_ms": 2500, "phase": "after", "count": 1},  # > 2 s read timeout
        {"path": "/inventory/shield/grant", "status": 502, "count": 2},
    )
    r = put_order(client, [{"itemSku": "starter_pack", "quantity": 1}])
    assert r.status_code == 503  # not settled yet
    drain(redis)
    f = _fulfilment(services)
    assert f.state == states.FULFILLED, f.reason
    entries = _grant_entries(emulator, player="player-1")
    keys = sorted(e["idempotencyKey"] for e in entries)
    assert len(keys) == 3 and len(set(keys)) == 3      # one grant per item, none twice
    assert emulator.player("player-1")["wallet"]["gems"] == 200
    assert emulator.player("player-1")["inventory"] == {"sword": 1, "shield": 1}
    assert f.attempts >= 3
    attempts = [h for h in f.history if h.detail and "transient" in h.detail]
    assert attempts, "each transient failure is in the history"


def test_retries_exhausted_leave_fulfill_failed_with_reason(settings_overrides, emulator, clean):
    app = create_app({**settings_overrides, "retry_max_attempts": 3})
    from workers import runtime
    runtime.use(app)
    svc = app.extensions["kraty_bridge"]
    emulator.faults({"path": CREDIT, "status": 503})
    put_order(app.test_client(), [{"itemSku": "gems_100", "quantity": 1}])
    drain(svc.redis)
    f = _fulfilment(svc)
    assert f.state == states.FULFILL_FAILED
    assert f.reason.startswith("retries exhausted after 3 attempts")
    assert _grant_entries(emulator) == []
    svc.close()


def test_retry_after_is_honoured(settings_overrides, emulator, clean):
    app = create_app({**settings_overrides, "retry_max_delay_seconds": 600.0})
    svc = app.extensions["kraty_bridge"]
    emulator.faults({"path": CREDIT, "status": 429, "retry_after": 40, "count": 1})
    before = utcnow()
    put_order(app.test_client(), [{"itemSku": "gems_100", "quantity": 1}])
    f = _fulfilment(svc)
    # backoff alone would wait at most base*2 = 0.02 s; Kraty asked for 40 s
    assert timedelta(seconds=40) <= f.next_attempt_at - before <= timedelta(seconds=45)
    svc.close()


def test_fifty_concurrent_identical_puts_grant_once(app, services, emulator):
    emulator.faults({"path": CREDIT, "latency_ms": 200})  # keep the first attempt busy while the rest arrive
    barrier = threading.Barrier(50)
    answers = []

    def put():
        client = app.test_client()
        barrier.wait()
        r = put_order(client, [{"itemSku": "gems_100", "quantity": 3}, {"itemSku": "sword", "quantity": 1}],
                      txn="race-1")
        answers.append((r.status_code, r.get_json()))

    threads = [threading.Thread(target=put) for _ in range(50)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(answers) == 50
    assert {status for status, _ in answers} == {200}
    assert {body["state"] for _, body in answers} == {"FULFILLED"}
    assert len({body["id"] for _, body in answers}) == 1
    entries = _grant_entries(emulator, player="player-1")
    assert len(entries) == 2
    assert emulator.player("player-1")["wallet"]["gems"] == 300


def test_two_attempts_never_call_kraty_for_the_same_item_at_once(client, services, emulator, redis):
    from middleware.orders import attempts
    emulator.faults({"path": CREDIT, "status": 503, "count": 1})
    put_order(client, [{"itemSku": "gems_100", "quantity": 1}])
    fid = _fulfilment(services).id
    emulator.faults({"path": CREDIT, "latency_ms": 300})
    outcomes = []
    threads = [threading.Thread(target=lambda: outcomes.append(attempts.attempt_fulfil(services, fid, "worker")))
               for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(o.ran for o in outcomes) == [False, False, False, True]
    stats = emulator.session.get(f"{emulator.url}/_emulator/stats").json()
    credit_calls = sum(n for path, n in _flatten_counts(stats).items() if path.endswith("/credit"))
    assert credit_calls == 2   # the inline 503 and exactly one attempt after it


def _flatten_counts(stats) -> dict:
    counts = stats.get("requests", stats)
    out = {}
    for key, value in counts.items():
        if isinstance(value, int):
            out[key] = value
        elif isinstance(value, dict):
            out.update({f"{key} {k}": v for k, v in value.items() if isinstance(v, int)})
    return out


def test_stale_lease_holder_cannot_overwrite_the_new_holder(client, services, emulator):
    from middleware.ledger import repository as repo
    emulator.faults({"path": CREDIT, "status": 503, "count": 1})
    put_order(client, [{"itemSku": "gems_100", "quantity": 1}])
    fid = _fulfilment(services).id
    with services.session() as old, services.session() as new:
        assert repo.claim(old, fid, "old-holder", 30, states.ACTIVE)
        stale = repo.load(old, fid)
        old.execute(update(Fulfilment).where(Fulfilment.id == fid).values(lease_until=utcnow()))
        old.commit()
        assert repo.claim(new, fid, "new-holder", 30, states.ACTIVE)  # takes over the expired lease
        stale.reason = "the old holder's late write"
        try:
            old.commit()
            raised = False
        except Exception as exc:  # noqa: BLE001 - asserting the exact type below
            raised = type(exc).__name__ == "StaleDataError"
        assert raised, "a fenced-off holder's commit must fail"
    with services.session() as session:
        assert session.get(Fulfilment, fid).lease_owner == "new-holder"


def _reschedule(redis, seconds_from_now: float) -> str:
    """Move the one delayed job's due time (the scheduled registry's score), as time passing would."""
    key = due.registry_key(FULFILMENT_QUEUE)
    (job_id,) = [raw.decode() for raw in redis.zrange(key, 0, -1)]
    redis.zadd(key, {job_id: int(time.time() + seconds_from_now)})
    return job_id


def test_reconciler_skips_a_waiting_job_and_queues_an_overdue_one(client, services, emulator, redis):
    emulator.faults({"path": CREDIT, "status": 503, "count": 1})
    put_order(client, [{"itemSku": "gems_100", "quantity": 1}])
    make_due(services)
    job_id = _reschedule(redis, 600)                  # its retry is due in ten minutes: waiting
    counts = reconcile_now(services)
    assert (counts["released"], counts["enqueued"]) == (0, 0)
    _reschedule(redis, -600)                          # ten minutes overdue: RQ's scheduler (its lock holder) is dead
    counts = reconcile_now(services)
    assert (counts["released"], counts["enqueued"]) == (1, 0)   # put on its queue, once
    assert queue(redis, FULFILMENT_QUEUE).job_ids == [job_id] and not redis.zcard(due.registry_key(FULFILMENT_QUEUE))
    assert reconcile_now(services)["enqueued"] == 0   # queued: waiting
    redis.flushdb()                                   # Redis lost it
    assert reconcile_now(services)["enqueued"] == 1
    drain(redis)
    assert _fulfilment(services).state == states.FULFILLED


def test_an_overdue_delayed_job_is_not_waiting(client, services, emulator, redis):
    """Enqueueing an attempt whose delayed job is overdue queues it once (the registry no longer holds it)."""
    emulator.faults({"path": CREDIT, "status": 503, "count": 1})
    put_order(client, [{"itemSku": "gems_100", "quantity": 1}])
    job_id = _reschedule(redis, 600)
    f = _fulfilment(services)
    assert is_waiting(redis, job_id) and services.jobs.attempt(f.id, f.state, f.attempts) is None
    _reschedule(redis, -600)
    assert not is_waiting(redis, job_id)              # the old code counted it as waiting for good
    assert services.jobs.attempt(f.id, f.state, f.attempts) == job_id
    assert due.move_overdue(redis, QUEUES) == 0 and queue(redis, FULFILMENT_QUEUE).job_ids == [job_id]
    drain(redis)
    assert _fulfilment(services).state == states.FULFILLED


def test_every_worker_moves_overdue_jobs_exactly_once(client, services, emulator, redis):
    """Two movers (two workers) over the same overdue jobs: each job is queued once."""
    emulator.faults({"path": CREDIT, "status": 503, "count": 2})
    put_order(client, [{"itemSku": "gems_100", "quantity": 1}], txn="txn-1")
    put_order(client, [{"itemSku": "gems_100", "quantity": 1}], txn="txn-2")
    key = due.registry_key(FULFILMENT_QUEUE)
    redis.zadd(key, {raw: int(time.time() - 600) for raw in redis.zrange(key, 0, -1)})
    results = []
    movers = [threading.Thread(target=lambda: results.append(due.move_overdue(redis, QUEUES))) for _ in range(2)]
    for mover in movers:
        mover.start()
    for mover in movers:
        mover.join()
    assert sorted(results) in ([0, 2], [1, 1]) and len(queue(redis, FULFILMENT_QUEUE).job_ids) == 2
    drain(redis)
    assert {_fulfilment(services, t).state for t in ("txn-1", "txn-2")} == {states.FULFILLED}


def test_reconcile_command(runner, client, services, emulator):
    emulator.faults({"path": CREDIT, "status": 503, "count": 1})
    put_order(client, [{"itemSku": "gems_100", "quantity": 1}])
    make_due(services)
    result = runner.invoke(args=["reconcile", "--stale-seconds", "0"])
    assert result.exit_code == 0, result.output
    assert "1 stalled order(s)" in result.output


@pytest.mark.processes   # a real worker process, killed mid-grant
def test_refund_after_a_worker_died_mid_grant_takes_back_what_kraty_gave(client, services, emulator, redis,
                                                                          settings_overrides):
    """The worker is killed after Kraty applied the credit; the order is then revoked. The revocation
    settles the unknown outcome by replaying the grant key (a replay: no second credit), then debits."""
    _worker_killed_after_kraty_applied_the_credit(client, services, emulator, redis, settings_overrides)

    r = client.put("/platform/v2/admin/namespaces/demo/users/player-1/fulfillments/txn-1/revoke",
                   headers={"Authorization": "Bearer demo-storefront-token"})
    assert r.status_code == 200 and r.get_json()["state"] == "REVOKED", r.get_json()
    kinds = [e["kind"] for e in emulator.ledger(player="player-1")]
    assert kinds == ["credit", "debit"]            # granted once, taken back once
    assert emulator.player("player-1")["wallet"]["gems"] == 0


def test_refund_of_an_order_never_sent_to_kraty_cancels_it(services, emulator, redis):
    from middleware.orders import actions
    from middleware.ledger.models import FulfilmentItem
    with services.session() as session:
        f = Fulfilment(namespace="demo", source="stripe", transaction_id="cs_1", player_id="p", request_hash="h",
                       state=states.RECEIVED, lines=[{"itemSku": "gems_100", "quantity": 1}],
                       items=[FulfilmentItem(line_no=0, component_no=0, line_quantity=1, component_quantity=1,
                                             kind="currency", target="gems", amount=100,
                                             state=states.ITEM_PENDING)])
        session.add(f)
        session.commit()
        fid = f.id
    assert actions.run(services, fid, "store:stripe", actions.REVOKE, reason="charge.refunded") == states.REVOKED
    drain(redis)
    f = _fulfilment(services, "cs_1")
    assert [i.state for i in f.items] == [states.ITEM_SKIPPED]
    assert f.reason.startswith("revoked before it was granted")
    assert emulator.ledger() == []


def test_unknown_sku_is_granted_after_the_catalog_is_fixed_and_the_order_retried(settings_overrides, emulator,
                                                                                  clean, tmp_path):
    from tests.support.orders_flow import AUTH
    app = create_app(settings_overrides)
    r = put_order(app.test_client(), [{"itemSku": "sword", "quantity": 1}, {"itemSku": "gems_250", "quantity": 2}])
    assert r.status_code == 409 and r.get_json()["stateInfo"]["failedList"][0]["itemSku"] == "gems_250"
    app.extensions["kraty_bridge"].close()

    fixed = tmp_path / "catalog.toml"
    fixed.write_text(Path(settings_overrides["catalog_path"]).read_text() + '''
[games.demo.products.gems_250]
type = "COINS"
grants = [{ currency = "gems", amount = 250 }]
''')
    app = create_app({**settings_overrides, "catalog_path": str(fixed)})
    r = app.test_client().put("/platform/v2/admin/namespaces/demo/users/player-1/fulfillments/txn-1/retry",
                              headers=AUTH)
    assert r.status_code == 200 and r.get_json()["state"] == "FULFILLED", r.get_json()
    assert emulator.player("player-1")["wallet"]["gems"] == 500
    assert len(_grant_entries(emulator)) == 2   # the sword once, the gems once
    app.extensions["kraty_bridge"].close()


def test_a_refund_long_after_the_purchase_is_still_retried(client, services, emulator, redis):
    """Retries are bounded from when the revocation began, not from when the order was bought."""
    put_order(client, [{"itemSku": "gems_100", "quantity": 1}])
    with services.session() as session:
        long_ago = utcnow() - timedelta(days=40)
        session.execute(update(Fulfilment).values(created_at=long_ago, state_changed_at=long_ago))
        session.commit()
    emulator.faults({"path": "/debit", "status": 503, "count": 1})
    r = client.put("/platform/v3/admin/namespaces/demo/users/player-1/fulfillments/txn-1/revoke",
                   headers={"Authorization": "Bearer demo-storefront-token"})
    assert r.status_code == 503 and "not settled" in r.get_json()["errorMessage"]
    drain(redis)
    f = _fulfilment(services)
    assert f.state == states.REVOKED
    assert emulator.player("player-1")["wallet"]["gems"] == 0
