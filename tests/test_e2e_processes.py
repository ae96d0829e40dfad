"""End to end with real processes: gunicorn serving the app, an RQ worker, the Kraty emulator."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys

import pytest
import requests

from config.settings import ROOT

from .helpers import AUTH, fulfil_path, poll


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Processes:
    def __init__(self):
        self.running: list[subprocess.Popen] = []

    def start(self, args, env, log_path):
        log = open(log_path, "wb")
        proc = subprocess.Popen(args, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
        self.running.append(proc)
        return proc

    def stop(self):
        for proc in self.running:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.running:
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)


def _up(url):
    try:
        return requests.get(url, timeout=1).status_code == 200
    except requests.RequestException:
        return False


@pytest.fixture
def stack(tmp_path, database_url, redis_url, clean):
    kraty_port, web_port = free_port(), free_port()
    kraty = f"http://127.0.0.1:{kraty_port}"
    catalog = tmp_path / "catalog.toml"
    catalog.write_text((ROOT / "config/examples/catalog.toml").read_text().replace("http://127.0.0.1:8100", kraty))
    env = dict(os.environ, KB_DATABASE_URL=database_url, KB_REDIS_URL=redis_url, KB_CATALOG=str(catalog),
               KB_RETRY_BASE_SECONDS="0.2", KB_RETRY_MAX_DELAY_SECONDS="0.5", KB_LOG_LEVEL="INFO",
               PYTHONPATH=str(ROOT))
    procs = Processes()
    try:
        procs.start([sys.executable, "-m", "emulator", "--port", str(kraty_port), "--config",
                     str(ROOT / "emulator/example.toml")], env, tmp_path / "emulator.log")
        procs.start([sys.executable, "-m", "gunicorn", "app:create_app()", "-b", f"127.0.0.1:{web_port}", "-w", "2",
                     "--no-control-socket"],
                    env, tmp_path / "gunicorn.log")
        procs.start([sys.executable, "-m", "workers"], env, tmp_path / "worker.log")
        web = f"http://127.0.0.1:{web_port}"
        poll(lambda: _up(f"{web}/readyz") and _up(f"{kraty}/_emulator/faults"), timeout=60, what="the stack")
        yield web, kraty
    finally:
        procs.stop()
        for name in ("emulator", "gunicorn", "worker"):
            path = tmp_path / f"{name}.log"
            if path.exists():
                print(f"--- {name} log ---\n{path.read_text()[-3000:]}")


def test_order_through_gunicorn_worker_and_emulator(stack):
    web, kraty = stack
    # Fulfilled inline by the web process
    r = requests.put(web + fulfil_path("p-e2e", "e2e-1"), json={"items": [{"itemSku": "starter_pack", "quantity": 1}]},
                     headers=AUTH, timeout=10)
    assert r.status_code == 200 and r.json()["state"] == "FULFILLED", r.text
    assert r.headers["X-Request-Id"]

    # Kraty fails the first call: the web answers "retrying", the separate worker process finishes it.
    requests.put(f"{kraty}/_emulator/faults", json={"rules": [{"path": "/credit", "status": 503, "count": 1}]},
                 timeout=5).raise_for_status()
    r = requests.put(web + fulfil_path("p-e2e", "e2e-2"), json={"items": [{"itemSku": "gems_500", "quantity": 2}]},
                     headers=AUTH, timeout=10)
    assert r.status_code == 409 and "retrying" in r.json()["stateReason"]

    def fulfilled():
        rows = requests.get(f"{web}/platform/v2/admin/namespaces/demo/fulfillments",
                            params={"transactionId": "e2e-2"}, headers=AUTH, timeout=5).json()["data"]
        return rows and rows[0]["state"] == "FULFILLED"

    poll(fulfilled, timeout=30, interval=0.2, what="the worker to fulfil e2e-2")
    player = requests.get(f"{kraty}/_emulator/players/demo/p-e2e", timeout=5).json()
    player = player.get("data", player)
    assert player["wallet"]["gems"] == 200 + 1000
    ledger = requests.get(f"{kraty}/_emulator/ledger", params={"player": "p-e2e"}, timeout=5).json()["entries"]
    assert len([e for e in ledger if e["sourceRefId"] == "e2e-2"]) == 1
