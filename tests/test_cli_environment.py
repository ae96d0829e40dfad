"""Operator commands find their environment (issue 16): beside `make run`, `flask --app app ...` takes the
launcher's Redis, ledger and catalog from instance/environment (written while it runs, removed when it stops);
a CLI that cannot reach Redis or the database, or has a bad setting, exits 1 with one line and no traceback."""
from __future__ import annotations

import os
import stat
import subprocess
import sys

import pytest
import requests

from config import run_environment
from config.settings import ROOT

from tests.support.orders_flow import poll
from tests.support.process_servers import free_port
from tests.test_embedded import README_HEADERS, launched  # noqa: F401  (the fixture)

pytestmark = pytest.mark.processes

FLASK = [sys.executable, "-m", "flask", "--app", "app"]


def flask(*args: str, **env: str) -> subprocess.CompletedProcess:
    """``flask --app app ARGS`` from the checkout, in an environment without KB_* settings but ``env``."""
    clean = {name: value for name, value in os.environ.items() if not name.startswith(("KB_", "PROMETHEUS"))}
    return subprocess.run([*FLASK, *args], cwd=ROOT, env={**clean, **env}, capture_output=True, text=True,
                          timeout=60)


def one_clear_line(result: subprocess.CompletedProcess, starts: str) -> str:
    assert result.returncode == 1, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr and result.stdout == ""
    *notice, line = result.stderr.strip().splitlines()
    assert all(text.startswith("using make run's environment") for text in notice), result.stderr
    assert len(notice) <= 1 and line.startswith(f"Error: {starts}"), line
    return line


def test_the_cli_beside_make_run_uses_its_redis_ledger_and_catalog(launched):  # noqa: F811
    stack = launched()
    stack.wait_ready()
    path = stack.instance / run_environment.FILE_NAME
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    _pid, chosen = run_environment.read(path)
    assert chosen["KB_REDIS_URL"].startswith("unix://") and str(stack.instance) in chosen["KB_DATABASE_URL"]
    assert chosen["KB_CATALOG"] == str(stack.instance / "catalog.toml")        # the copy for the emulator's port
    assert chosen["KB_SECRET_KEY_FILE"] == str(stack.instance / "secret_key")
    assert (stack.instance / "secret_key").read_text().strip() not in path.read_text()

    # An order Kraty refused (FULFILL_FAILED), retried from the CLI: the launcher's worker and emulator grant it.
    app, emulator = f"http://127.0.0.1:{stack.port}", f"http://127.0.0.1:{stack.emulator_port}"
    requests.put(f"{emulator}/_emulator/faults", json={"rules": [{"path": "/credit", "status": 400}]},
                 timeout=5).raise_for_status()
    order = f"{app}/platform/v2/admin/namespaces/demo/users/player-9/fulfillments/cli-env-1"
    failed = requests.put(order, json={"items": [{"itemSku": "gems_100", "quantity": 1}]}, headers=README_HEADERS,
                          timeout=30)
    assert failed.json()["state"] == "FULFILL_FAILED", failed.text
    requests.delete(f"{emulator}/_emulator/faults", timeout=5).raise_for_status()

    retried = flask("orders", "retry", "cli-env-1", "--reason", "Kraty fixed", KB_INSTANCE_DIR=str(stack.instance))
    assert retried.returncode == 0, retried.stdout + retried.stderr
    assert f"using make run's environment from {path}" in retried.stderr

    def granted():
        body = requests.get(f"{emulator}/_emulator/players/demo/player-9", timeout=5).json()
        return body.get("data", body).get("wallet", {}).get("gems") == 100
    poll(granted, timeout=30, interval=0.2, what="the retried order to reach the emulator's wallet")

    # The shell's own setting wins over the file.
    elsewhere = flask("reconcile", KB_INSTANCE_DIR=str(stack.instance), KB_REDIS_URL=f"redis://127.0.0.1:{free_port()}/0")
    one_clear_line(elsewhere, "cannot reach Redis (redis://127.0.0.1:")

    stack.proc.terminate()
    assert stack.proc.wait(timeout=30) == 0, stack.output
    assert not path.exists()


def test_a_file_left_by_a_stopped_launcher_is_not_used(tmp_path):
    stopped = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    (tmp_path / run_environment.FILE_NAME).write_text(
        f"{run_environment.PID_PREFIX}{stopped.stdout.strip()}\nexport KB_REDIS_URL=unix:///gone/redis.socket\n")
    result = flask("storefronts", "new-token", KB_INSTANCE_DIR=str(tmp_path))
    assert result.returncode == 0 and "token_sha256" in result.stdout
    assert "left by a make run that has stopped" in result.stderr and "unix:///gone" not in result.stderr


def test_unreachable_redis_database_and_bad_settings_are_one_line(tmp_path):
    ledger = f"sqlite:///{tmp_path / 'ledger.db'}"
    assert flask("db", "upgrade", KB_DATABASE_URL=ledger).returncode == 0
    closed = free_port()
    one_clear_line(flask("reconcile", KB_DATABASE_URL=ledger, KB_REDIS_URL=f"redis://127.0.0.1:{closed}/0"),
                   f"cannot reach Redis (redis://127.0.0.1:{closed}/0)")
    one_clear_line(flask("orders", "retry", "some-order", "--reason", "x", KB_DATABASE_URL=ledger,
                         KB_REDIS_URL=f"redis://127.0.0.1:{closed}/0"), "cannot reach Redis")
    line = one_clear_line(flask("orders", "list", KB_DATABASE_URL=f"postgresql+psycopg://kb:hunter2@127.0.0.1:{closed}/kb"),
                          f"cannot use the database (postgresql+psycopg://kb:***@127.0.0.1:{closed}/kb)")
    assert "hunter2" not in line
    one_clear_line(flask("orders", "list", KB_LOG_LEVEL="loud"), "KB_LOG_LEVEL: expected DEBUG")
    one_clear_line(flask("keys", "list", KB_CATALOG=str(tmp_path / "missing.toml")), str(tmp_path / "missing.toml"))
