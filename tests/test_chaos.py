"""The chaos run's short form (issue 15), on every CI run: ``python -m bench chaos`` with a few hundred
orders, its own PostgreSQL and Redis, every kind of kill once, and the bound scaled down (10 s stale +
5 s interval) so that a stall the old code had (minutes) cannot hide in it."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from bench.servers import pg_bin, redis_binary
from config.settings import ROOT

pytestmark = [pytest.mark.processes,
              pytest.mark.skipif(pg_bin() is None or redis_binary() is None,
                                 reason="needs PostgreSQL's server binaries and redis-server")]
MIX = "errors=0.2,after=0.5,slow=0.1,slow_ms=1000,drop=0.02,worker=1,lock_holder=1,reconciler=1,web=1,redis=1,postgres=1"


def test_chaos_short_form(tmp_path):
    out = tmp_path / "chaos.json"
    run = subprocess.run([sys.executable, "-m", "bench", "chaos", "--orders", "200", "--duration", "45",
                          "--stale", "10", "--interval", "5", "--drain-timeout", "120", "--faults", MIX,
                          "--seed", "15", "--json", str(out)], cwd=ROOT, capture_output=True, text=True, timeout=420)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-4000:]
    result = json.loads(out.read_text())
    assert result["orders"] == 200 and set(result["checks"].values()) == {0}
    assert result["kills"]["redis"] == 1 and result["kills"]["postgres"] == 1 and result["kills"]["web"] == 1
    assert sum(result["kills"].values()) == 6                    # every planned kill happened
    assert result["stuck"] == 0 and result["status_500"] == 0 and result["503_without_retry_after"] == 0
    assert result["longest_stall_s"] <= result["bound_s"] + 10, result
