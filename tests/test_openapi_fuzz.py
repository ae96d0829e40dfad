"""schemathesis against /openapi.json (issue 13): every check, every phase (stateful included), bounded in
time, against the app served on a free port with a real ledger and queue. It must find nothing: no server
error, and no place where the description accepts what the API refuses (or the other way round).

Two runs: every check with ASCII text (an id is "printable, no whitespace", which no regex dialect JSON
Schema tools share can spell out for all of Unicode), then "no server error" with any Unicode text."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from config.settings import ROOT

from tests.conftest import Served
from tests.support.orders_flow import put_order
from tests.support.ops_ledger import key

pytestmark = pytest.mark.processes

CONFIG = Path(__file__).with_name("schemathesis.toml")  # what no schema can say (receipts' signatures, cursors)


def schemathesis() -> str:
    found = shutil.which("schemathesis", path=str(Path(sys.executable).parent))
    assert found, "schemathesis is in requirements-dev.txt"
    return found


@pytest.fixture
def served(app, client, services):
    for n in range(3):  # some orders for the list, the read and the actions to find
        put_order(client, [{"itemSku": "gems_100", "quantity": 1}], user=f"player-{n}", txn=f"fuzz-{n}")
    server = Served(app)
    yield server.url, key(services, "admin")["Authorization"]
    server.stop()


@pytest.mark.parametrize("checks, codec, seconds", [("all", "ascii", 45), ("not_a_server_error", "utf-8", 25)],
                         ids=["every-check", "no-server-error"])
def test_schemathesis_finds_nothing(served, tmp_path, checks, codec, seconds):
    url, authorization = served
    report = tmp_path / "report.json"
    run = subprocess.run(
        [schemathesis(), "--config-file", str(CONFIG), "run", f"{url}/openapi.json", "--checks", checks,
         "--phases", "examples,coverage,fuzzing,stateful", "--max-time", str(seconds), "--workers", "1",
         "--seed", "13", "--max-examples", "20", "--generation-codec", codec, "--no-color", "--warnings", "off",
         "--header", f"Authorization:{authorization}", "--report", "json", "--report-json-path", str(report)],
        cwd=tmp_path, env=dict(os.environ, PYTHONPATH=str(ROOT)), capture_output=True, text=True,
        timeout=seconds + 120)
    found = [line for line in run.stdout.splitlines() if line.startswith(("___", "- ", "    curl", "    `"))]
    assert run.returncode == 0, "\n".join(found)[:20000] + run.stdout[-3000:] + run.stderr[-3000:]
    assert json.loads(report.read_text()), "schemathesis wrote its report"
