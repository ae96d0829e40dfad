"""Redis Sentinel (Debian's redis-sentinel) in front of a master and a replica this test starts: the web app
and a real ``python -m workers`` process reach Redis through ``redis+sentinel://``, and a failover in the
middle of a load of Stripe purchases loses no order and grants none twice (jobs the old master took after
the switch are lost with it; the ledger keeps the orders and the reconciler enqueues them again)."""
from __future__ import annotations

import os
import subprocess
import sys
import threading

import pytest
from redis import Redis
from sqlalchemy import create_engine, func, select

from app import create_app
from config.settings import ROOT
from middleware.ledger.models import Fulfilment
from workers import runtime

from tests.support.orders_flow import poll
from tests.support.process_servers import SERVICE, SentinelSet
from tests.support.stripe_events import completed, post

pytestmark = pytest.mark.processes

ORDERS = 60
SWITCH_AFTER = 20   # then 20 more while the Sentinel fails over, and 20 after it named the new master


@pytest.fixture
def sentinels(tmp_path):
    servers = SentinelSet(tmp_path)
    try:
        sentinel = Redis(port=servers.sentinel_port, decode_responses=True)
        replica = Redis(port=servers.replica_port, decode_responses=True)
        poll(lambda: replica.info("replication")["master_link_status"] == "up", timeout=10, what="the replica")
        poll(lambda: sentinel.sentinel_slaves(SERVICE), timeout=10, what="the Sentinel to see the replica")
        yield servers, sentinel
    finally:
        servers.stop()


def test_failover_during_a_load_loses_no_order_and_grants_none_twice(sentinels, settings_overrides, database_url,
                                                                      catalog_path, stripe_api_url, stripe_fake,
                                                                      emulator, tmp_path):
    servers, sentinel = sentinels
    app = create_app(dict(settings_overrides, redis_url=servers.url))
    svc = app.extensions["kraty_bridge"]
    env = dict(os.environ, KB_DATABASE_URL=database_url, KB_REDIS_URL=servers.url, KB_CATALOG=catalog_path,
               KB_STRIPE_API_BASE=stripe_api_url, KB_RETRY_BASE_SECONDS="0.1", KB_RETRY_MAX_DELAY_SECONDS="0.5",
               KB_RECONCILE_INTERVAL_SECONDS="1", KB_RECONCILE_STALE_SECONDS="2", KB_LOG_JSON="false",
               PYTHONPATH=str(ROOT))
    log = tmp_path / "worker.log"
    with open(log, "wb") as out:
        worker = subprocess.Popen([sys.executable, "-m", "workers"], cwd=ROOT, env=env, stdout=out,
                                  stderr=subprocess.STDOUT, start_new_session=True)
    engine = create_engine(database_url)
    try:
        sessions = [stripe_fake.session(client_reference_id="player-sentinel",
                                        line_items=[{"price": "price_gems_100", "quantity": 1}])
                    for _ in range(ORDERS)]
        statuses, halfway, switched = [], threading.Event(), threading.Event()
        # Kraty refuses some credits: their retries are delayed jobs, moved by the worker's RQ scheduler (a
        # process of its own, on a connection RQ rebuilds from the Sentinel-managed one).
        emulator.faults({"path": "/credit", "status": 503, "count": 6})

        def load():
            client = app.test_client()
            for n, session in enumerate(sessions):
                if n == SWITCH_AFTER:
                    halfway.set()
                elif n == 2 * SWITCH_AFTER:
                    switched.wait(30)  # the rest through the app's connections to the old master
                statuses.append(post(client, completed(session)).status_code)

        runtime.use(app)
        thread = threading.Thread(target=load)
        thread.start()
        assert halfway.wait(30)
        assert sentinel.execute_command("SENTINEL FAILOVER", SERVICE)
        poll(lambda: sentinel.sentinel_get_master_addr_by_name(SERVICE)[1] == servers.replica_port, timeout=10,
             what="the Sentinel to name the replica the master")
        switched.set()
        thread.join(60)
        assert statuses == [200] * ORDERS

        def fulfilled() -> int:
            with engine.connect() as db:
                return db.scalar(select(func.count()).select_from(Fulfilment).where(
                    Fulfilment.source == "stripe", Fulfilment.state == "FULFILLED"))
        poll(lambda: fulfilled() == ORDERS or worker.poll() is not None, timeout=30, interval=0.2,
             what="every order to be fulfilled")
        assert worker.poll() is None, log.read_text()[-3000:]
        assert fulfilled() == ORDERS
        granted = sorted(entry["sourceRefId"] for entry in emulator.ledger(player="player-sentinel"))
        assert granted == sorted(s["id"] for s in sessions)  # each order once
        assert svc.redis.connection_pool.get_master_address()[1] == servers.replica_port
    finally:
        runtime.use(None)
        if worker.poll() is None:
            worker.terminate()
            worker.wait(15)
        engine.dispose()
        svc.close()
        print(log.read_text()[-3000:])
