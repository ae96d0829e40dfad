"""One log format: gunicorn's error and access lines are JSON in the app's shape, the access line carrying
the request id the app answered (they were gunicorn's plain text lines among the app's JSON)."""
from __future__ import annotations

import json
import os
import sys

import pytest
import requests

from config.settings import ROOT

from tests.support.orders_flow import poll
from tests.support.processes import Processes, free_port, up

pytestmark = pytest.mark.processes

APP_FIELDS = {"time", "level", "logger", "message", "request_id"}


def test_gunicorn_error_and_access_lines_are_the_apps_json(tmp_path, database_url, redis_url):
    port = free_port()
    env = dict(os.environ, KB_DATABASE_URL=database_url, KB_REDIS_URL=redis_url, KB_LOG_JSON="true",
               KB_LOG_LEVEL="INFO", PYTHONPATH=str(ROOT), PROMETHEUS_MULTIPROC_DIR=str(tmp_path / "metrics"))
    log = tmp_path / "gunicorn.log"
    procs = Processes()
    try:
        procs.start([sys.executable, "-m", "gunicorn", "-c", "config/gunicorn.conf.py", "app:create_app()",
                     "-b", f"127.0.0.1:{port}", "-w", "1", "--no-control-socket", "--access-logfile", "-"],
                    env, log)
        web = f"http://127.0.0.1:{port}"
        poll(lambda: up(f"{web}/healthz"), timeout=60, what="gunicorn")
        answer = requests.get(f"{web}/readyz?probe=secret-token", headers={"X-Request-Id": "probe-0001-abcd"},
                              timeout=5)
        assert answer.headers["X-Request-Id"] == "probe-0001-abcd"
        requests.get(f"{web}/no-such-page", timeout=5)
    finally:
        procs.stop()
    lines = [line for line in log.read_text().splitlines() if line.strip()]
    entries = [json.loads(line) for line in lines]  # every line, gunicorn's own included, is JSON
    assert all(APP_FIELDS <= set(entry) for entry in entries)
    loggers = {entry["logger"] for entry in entries}
    assert {"gunicorn.error", "gunicorn.access"} <= loggers
    assert any(e["logger"] == "gunicorn.error" and "Booting worker" in e["message"] for e in entries)
    access = [e for e in entries if e["logger"] == "gunicorn.access"]
    ready = next(e for e in access if e["path"] == "/readyz")
    assert ready["request_id"] == "probe-0001-abcd" and ready["method"] == "GET"
    assert ready["status"] == answer.status_code and ready["duration_ms"] >= 0 and ready["response_bytes"] > 0
    assert "secret-token" not in json.dumps(ready)  # the query string stays out of the logs
    missing = next(e for e in access if e["path"] == "/no-such-page")
    assert missing["status"] == 404 and len(missing["request_id"]) == 32  # one the app made
    assert all(e["time"].endswith("Z") for e in entries)
