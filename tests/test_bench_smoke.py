"""The benchmarks keep working: ``python -m bench NAME... --quick`` completes and every summary has numbers.

No timing threshold is asserted here (the machine is shared and noisy); the full run
(``python -m bench``) is where ratios are judged.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from bench.__main__ import NAMES
from config.settings import ROOT

pytestmark = pytest.mark.bench


def _positive(value) -> bool:
    return isinstance(value, (int, float)) and value > 0


def _both_sides_measured(run: dict) -> None:
    for side in ("bare", "floor", "app"):
        assert _positive(run[side]["rps"]) and run[side]["p50_ms"] is not None and run[side]["p99_ms"] is not None


def _store_ingest(results, name: str, legs: tuple[str, ...] = ("duplicates",)) -> dict:
    """A store-webhook benchmark's summary (``bench/ingest_common.py``), its common checks passed."""
    summary = json.loads((results / f"{name}.json").read_text())
    assert summary["correct"] is True
    for run in summary["configs"]:
        _both_sides_measured(run)
        assert run["app"]["errors"] == 0 and run["app"]["wrapped"] == 0   # every app request a new event
        for leg in legs:
            assert _positive(run[leg]["rps"]) and run[leg]["errors"] == 0
        check = run["correctness"]
        assert check["ok"], check["problems"]
        assert check["answered_2xx"] <= check["inbound_events"] <= check["requests_written"]
        assert check["rq_jobs"] == check["inbound_events"] and check["duplicate_rows_added"] == 0
        assert check["exact_leg"]["rows_added"] == check["exact_leg"]["answered_2xx"] > 0
    assert _positive(summary["best"]["ratio"]) and _positive(summary["best"]["floor_ratio"])
    return summary


def test_quick_benchmarks_complete_and_report_numbers(tmp_path):
    env = dict(os.environ, KB_BENCH_RESULTS=str(tmp_path))
    for name in ("KB_DATABASE_URL", "KB_REDIS_URL", "KB_CATALOG"):
        env.pop(name, None)
    # every benchmark but ops_query, which test_bench_ops_query.py runs and checks (one run of it, not two)
    names = [name for name in NAMES if name != "ops_query"]
    done = subprocess.run([sys.executable, "-m", "bench", *names, "--quick"], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=360)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]

    ingest = json.loads((tmp_path / "ingest.json").read_text())
    for run in ingest["configs"]:
        _both_sides_measured(run)
        assert run["app"]["errors"] == 0
        assert run["app"]["ledger_states"].get("FULFILLED", 0) >= run["app"]["requests"]
        assert run["floor_rows"] >= run["floor"]["requests"]   # the floor committed a row per answer
    assert _positive(ingest["best"]["ratio"]) and _positive(ingest["best"]["floor_ratio"])

    e2e = json.loads((tmp_path / "e2e.json").read_text())
    assert _positive(e2e["orders_per_second"]) and _positive(e2e["noop_jobs_per_second"]) and _positive(e2e["ratio"])
    assert _positive(e2e["floor_jobs_per_second"]) and _positive(e2e["floor_ratio"])
    assert e2e["ledger_check"]["passed"]
    # at --quick's 40 jobs a leg, a leg's CPU can be below the noise of the workers' start-up (net 0): the
    # ratio is then reported as not measurable; otherwise it is the orders' net CPU over the no-op jobs'
    noop = next(leg for leg in e2e["legs"] if leg["kind"] == "noop")
    orders = next(leg for leg in e2e["legs"] if leg["kind"] == "orders")
    if noop["worker_cpu_ms_per_job_net"] and orders["worker_cpu_ms_per_job_net"]:
        assert e2e["worker_cpu_ratio"] == round(orders["worker_cpu_ms_per_job_net"] / noop["worker_cpu_ms_per_job_net"], 3)
    else:
        assert e2e["worker_cpu_ratio"] is None
    assert {leg["kind"] for leg in e2e["legs"]} == {"noop", "floor", "orders"}
    for leg in e2e["legs"]:
        assert leg["jobs_finished"] == leg["count"] and leg["p50_ms"] is not None
        if leg["kind"] == "orders":
            assert leg["ledger_states"] == {"FULFILLED": leg["count"]}

    memory = json.loads((tmp_path / "memory.json").read_text())
    assert len(memory["legs"]) == 2
    for leg in memory["legs"]:
        assert leg["fulfilled"] == leg["orders"] and leg["errors"] == 0
        assert all(_positive(leg[k]) for k in ("rss_at_half_mb", "rss_at_end_mb", "peak_mb"))

    _store_ingest(tmp_path, "stripe")

    app_store = _store_ingest(tmp_path, "app_store", legs=("production", "duplicates"))
    verify = app_store["verification_in_process"]
    # one chain signs everything: after the first sight, every chain check is a cache hit
    assert verify["chain_cache_hits"] == verify["chain_verifications"] > 0

    google_play = _store_ingest(tmp_path, "google_play")
    assert google_play["one_token_for_all_requests"] is True
    for run in google_play["configs"]:
        assert 0 < run["certs_fetches"] <= run["workers"]   # the certs' max-age outlasts the run
    verify = google_play["verification_in_process"]
    assert all(_positive(verify[k]) for k in ("ms_per_token", "ms_per_distinct_token", "stock_verify_token_ms"))

    _store_ingest(tmp_path, "kraty")

    deliveries = json.loads((tmp_path / "deliveries.json").read_text())
    assert deliveries["correct"] is True
    assert all(_positive(deliveries[k]) for k in ("deliveries_per_second", "noop_jobs_per_second", "ratio"))
    assert {leg["kind"] for leg in deliveries["legs"]} == {"noop", "deliveries"}
    for leg in deliveries["legs"]:
        assert leg["correctness"]["ok"], leg["correctness"]["problems"]
        assert leg["jobs_finished"] == leg["count"] > 0 and _positive(leg["per_second"])
        if leg["kind"] == "deliveries":   # every event delivered, signed, at the receiver
            assert leg["ledger_states"] == {"delivered": leg["count"]}
            received = leg["receiver"]
            assert received["distinct"] == leg["count"] and received["rejected"] == 0
            assert received["verified"] == received["received"] == leg["count"] + received["duplicates"]
