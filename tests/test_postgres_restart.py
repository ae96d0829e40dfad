"""A PostgreSQL restart mid-load (issue 15), on a cluster the test starts itself on its own port: the web
answers 503 with Retry-After while it is down (never 500), a real worker process rides it out, and every
order completes exactly once afterwards."""
from __future__ import annotations

import threading
import time

import pytest

from app import create_app
from bench.servers import PostgresServer, RedisServer, pg_bin, redis_binary
from middleware.ledger import migrate
from workers import runtime

from tests.support.orders_flow import AUTH, fulfil_path, poll, put_order
from tests.test_failures import CREDIT
from tests.test_worker_outages import _log, _start_worker, _stop

pytestmark = [pytest.mark.processes,
              pytest.mark.skipif(pg_bin() is None or redis_binary() is None,
                                 reason="needs PostgreSQL's server binaries and redis-server")]
ORDERS, CLIENTS = 30, 5
DEFINITE = "FULFILLED"
DOWN = "the database unavailable"


@pytest.fixture
def own_postgres():
    server = PostgresServer().init()
    migrate.upgrade(server.url)
    yield server
    server.remove()


def storefront(app, txns, answers, stop):
    """A storefront: PUT each order again until it is FULFILLED (5xx, 409 and errors: try again)."""
    client = app.test_client()
    for txn in txns:
        while not stop.is_set():
            r = put_order(client, [{"itemSku": "gems_100", "quantity": 1}], txn=txn)
            answers.append((r.status_code, r.headers.get("Retry-After"), r.get_json()))
            if r.status_code == 200 and r.get_json().get("state") == DEFINITE:
                break
            time.sleep(0.2)


def test_postgres_restart_mid_load(settings_overrides, own_postgres, tmp_path, emulator):
    redis = RedisServer(tmp_path / "redis").start()
    app = create_app({**settings_overrides, "database_url": own_postgres.url, "redis_url": redis.url})
    runtime.use(app)
    log_path = tmp_path / "worker.log"
    worker = _start_worker(settings_overrides, redis.url, log_path, KB_DATABASE_URL=own_postgres.url,
                           KB_RECONCILE_INTERVAL_SECONDS="1", KB_RECONCILE_STALE_SECONDS="1", KB_LEASE_SECONDS="2",
                           KB_RETRY_BASE_SECONDS="0.2", KB_RETRY_MAX_DELAY_SECONDS="1")
    # half the first attempts fail (their retries are the worker's), every Kraty call takes a while
    emulator.faults({"path": CREDIT, "status": 503, "error_rate": 0.5}, {"path": CREDIT, "latency_ms": 100})
    answers, stop = [], threading.Event()
    txns = [f"pg-{n}" for n in range(ORDERS)]
    clients = [threading.Thread(target=storefront, args=(app, txns[k::CLIENTS], answers, stop)) for k in range(CLIENTS)]
    try:
        for thread in clients:
            thread.start()
        poll(lambda: len(answers) >= ORDERS // 3, timeout=60, what="the load to be under way")
        own_postgres.stop("immediate")                              # the database goes away mid-load
        r = app.test_client().put(fulfil_path(txn="pg-during"), json={"items": [{"itemSku": "gems_100",
                                                                                 "quantity": 1}]}, headers=AUTH)
        assert r.status_code == 503 and r.headers["Retry-After"] == "5", r.get_json()
        ready = app.test_client().get("/readyz")
        assert ready.status_code == 503 and ready.get_json()["missing"] == ["database"]
        poll(lambda: any(a[0] == 503 for a in answers), timeout=30, what="a storefront to meet the outage")
        poll(lambda: DOWN in _log(log_path), timeout=30, what="the worker to meet the outage")
        own_postgres.start()
        for thread in clients:
            thread.join(120)
        assert not any(thread.is_alive() for thread in clients), "orders did not complete"
        assert worker.poll() is None, _log(log_path)
    finally:
        stop.set()
        _stop(worker)
        runtime.use(None)
        app.extensions["kraty_bridge"].close()
        redis.stop()
    statuses = {status for status, _, _ in answers}
    assert statuses <= {200, 409, 503}, [a for a in answers if a[0] not in (200, 409, 503)][:3]
    assert all(retry_after for status, retry_after, _ in answers if status == 503)
    assert all(body["stateReason"].startswith("in progress") for status, _, body in answers if status == 409)
    log = _log(log_path)
    assert log.count(DOWN) == 1 and log.count("the database available again") == 1, log   # once per outage
    assert "Traceback" not in log, log
    credits = [e["sourceRefId"] for e in emulator.ledger(kind="credit")]
    assert sorted(credits) == sorted(txns)                          # every order granted exactly once
