"""Ingest: the fulfil PUT under gunicorn vs a bare Flask endpoint under the very same gunicorn settings.

Target: the real endpoint serves at least half the bare endpoint's requests/s. Every request is a new
order (unique transaction id), so each one commits to the ledger and makes its first Kraty attempt
inline (a call to the emulator, running as its own process). Several gunicorn configurations are
tried; both apps always get the same one.
"""
from __future__ import annotations

import time
import uuid
from pathlib import Path

from sqlalchemy import create_engine, text

from bench import common, floor_app, profile
from bench.common import kb_env, table, verdict
from bench.loadgen import have_wrk, run_load
from bench.measure import CpuMeter, service_pids
from bench.procs import Emulator, Gunicorn, write_catalog
from bench.profile import Profile

TARGET = 0.5
FULL = dict(configs=[("sync", 2, 1), ("sync", 4, 1), ("gthread", 2, 4), ("gthread", 3, 4), ("gthread", 4, 2)],
            seconds=5.0, rounds=2, warmup=2.0, connections=16, unloaded=3.0)
QUICK = dict(configs=[("gthread", 2, 2)], seconds=0.5, rounds=1, warmup=0.5, connections=4, unloaded=0.5)
BARE = "bench.bare_app:app"
FLOOR = "bench.floor_app:app"   # one committed INSERT + one HTTP call to the emulator, then the answer
APP = "app:create_app()"
FLOOR_TARGET = 0.7   # issue 18: the fulfil PUT takes >= 0.7 of its floor's requests/s


COMPONENTS = ("gunicorn", "emulator", "postgres", "redis", "client")


def _slice(server: Gunicorn, emulator: Emulator, groups: dict, opts: dict, label: str,
           spy_name: str | None) -> dict:
    """One measured load run against ``server``, with the CPU each process group used meanwhile."""
    spy = Profile(server.worker_pids()[0], opts["seconds"], profile.out_path(spy_name)) if spy_name else None
    meter = CpuMeter({"gunicorn": server.pids(), "emulator": emulator.pids(), **groups}).start()
    result = run_load(server.url, f"{label}-{uuid.uuid4().hex[:8]}", opts["seconds"], opts["connections"])
    cpu = meter.stop()
    if spy is not None and spy.finish():
        print(f"profile of one {label} worker: {spy.out}")
    cpu["client"] = result.client_cpu
    return {**result.as_dict(), "cpu_cores": cpu}


def _one_config(kind: str, workers: int, threads: int, env: dict, emulator: Emulator, engine, workdir: Path,
                opts: dict) -> dict:
    """Both servers up side by side (an idle one costs nothing); bare and app runs alternate, so a burst
    of other work on the shared machine hits both sides alike."""
    name = f"{kind} w={workers}" + (f" t={threads}" if kind == "gthread" else "")
    groups = service_pids(env["KB_DATABASE_URL"])
    common.clear_ledger(engine)
    floor_app.create_table(env["KB_DATABASE_URL"])
    emulator.reset()
    servers = {}
    try:
        servers["bare"] = Gunicorn(BARE, workers, kind, threads, env, workdir / "gunicorn-bare.log")
        servers["floor"] = Gunicorn(FLOOR, workers, kind, threads, {**env, "KB_BENCH_FLOOR_KRATY": emulator.url},
                                    workdir / "gunicorn-floor.log")
        servers["app"] = Gunicorn(APP, workers, kind, threads, env, workdir / "gunicorn-app.log", ready_path="/healthz")
        for label, server in servers.items():
            run_load(server.url, f"warm-{label}-{uuid.uuid4().hex[:8]}", opts["warmup"], opts["connections"])
        slices: dict[str, list] = {"bare": [], "floor": [], "app": []}
        for n in range(opts["rounds"]):
            for label, server in servers.items():
                spy_name = f"ingest-app-{kind}-w{workers}" if label == "app" and n == 0 else None
                slices[label].append(_slice(server, emulator, groups, opts, label, spy_name))
        out = {"config": name, "worker_class": kind, "workers": workers, "threads": threads}
        for label, server in servers.items():
            unloaded = run_load(server.url, f"one-{label}-{uuid.uuid4().hex[:8]}", opts["unloaded"], 1)
            out[label] = common.combine(slices[label], unloaded, COMPONENTS, wrapped=False)
    finally:
        for server in servers.values():
            server.close()
    with engine.connect() as conn:
        counts = dict(conn.execute(text("SELECT state, count(*) FROM fulfilments GROUP BY state")).all())
    out["app"]["ledger_states"] = counts
    out["ratio"] = round(out["app"]["rps"] / out["bare"]["rps"], 3) if out["bare"]["rps"] else None
    out["floor_ratio"] = round(out["app"]["rps"] / out["floor"]["rps"], 3) if out["floor"]["rps"] else None
    out["floor_rows"] = floor_app.rows(env["KB_DATABASE_URL"])
    return out


def run(backends: common.Backends, workdir: Path, quick: bool = False) -> dict:
    opts = QUICK if quick else FULL
    common.reset_ledger(backends.database_url)
    engine = create_engine(backends.database_url)
    emulator = Emulator(workdir)
    results = []
    started = time.perf_counter()
    try:
        env = kb_env(backends, write_catalog(workdir, emulator.url))
        for kind, workers, threads in opts["configs"]:
            results.append(_one_config(kind, workers, threads, env, emulator, engine, workdir, opts))
    finally:
        emulator.close()
        engine.dispose()
    best = max(results, key=lambda r: r["app"]["rps"])
    client = results[0]["bare"]["client"]
    print(f"\nINGEST  fulfil PUT vs bare Flask endpoint, same gunicorn settings  [{backends.describe()}]")
    print(f"client: {client}, {opts['connections']} keep-alive connections; per configuration {opts['rounds']} "
          f"round(s) of bare {opts['seconds']:.0f} s then app {opts['seconds']:.0f} s, after {opts['warmup']:.1f} s "
          f"warm-up; every request a new transaction id; p50 = mean over rounds, p99 = worst round")
    rows = []
    for r in results:
        b, f, a = r["bare"], r["floor"], r["app"]
        rows.append([r["config"], b["rps"], b["p50_ms"], b["p99_ms"], f["rps"], f["p50_ms"], f["p99_ms"], a["rps"],
                     a["p50_ms"], a["p99_ms"], r["ratio"], r["floor_ratio"], a["errors"],
                     f"{b['unloaded']['p50_ms']:.2f}/{b['unloaded']['p99_ms']:.2f}",
                     f"{f['unloaded']['p50_ms']:.2f}/{f['unloaded']['p99_ms']:.2f}",
                     f"{a['unloaded']['p50_ms']:.2f}/{a['unloaded']['p99_ms']:.2f}", _per_request(b), _per_request(f),
                     _per_request(a)])
    print(table(["gunicorn", "bare req/s", "p50 ms", "p99 ms", "floor req/s", "p50 ms", "p99 ms", "app req/s",
                 "p50 ms", "p99 ms", "vs bare", "vs floor", "errors", "bare 1-conn p50/p99", "floor 1-conn p50/p99",
                 "app 1-conn p50/p99", "bare: CPU ms/req", "floor: CPU ms/req", "app: CPU ms/req"], rows))
    print("floor: the same gunicorn serving bench/floor_app.py, which commits one INSERT of the body and makes one "
          "Kraty call to the emulator before it answers (what the AccelByte contract requires; none of our code)")
    print("1-conn: latency with one connection (no queueing); p50/p99 under load include queueing "
          f"({opts['connections']} connections / throughput).")
    print("CPU ms/req = CPU time per request of gunicorn (master+workers) / emulator / PostgreSQL (our backends + "
          "server processes) / redis-server / the load client")
    for r in results:
        print(f"ledger check {r['config']}: orders by state {r['app']['ledger_states']} (every PUT answered "
              f"{'with no error' if not r['app']['errors'] else str(r['app']['errors']) + ' errors'}); floor rows "
              f"{r['floor_rows']}")
    print(f"best app throughput: {best['config']}: ratio {best['ratio']} vs bare (target >= {TARGET}: "
          f"{verdict(best['ratio'], TARGET)}), {best['floor_ratio']} vs its floor (target >= {FLOOR_TARGET}: "
          f"{verdict(best['floor_ratio'], FLOOR_TARGET)})")
    top_bare = max(r["bare"]["rps"] for r in results)
    headroom = top_bare / max(best["app"]["rps"], 1)
    print(f"client check: this client drove the bare endpoint at {top_bare:,.0f} req/s, {headroom:.1f}x the best app "
          f"rate" + (": the client is not what limits the app" if headroom >= 2 else
                     ": too close to tell whether the client limits the app"))
    summary = {"benchmark": "ingest", "quick": quick, "backends": backends.describe(), "client": client,
               "wrk_installed": have_wrk(), "client_headroom": round(headroom, 1), "connections": opts["connections"],
               "seconds": opts["seconds"], "rounds": opts["rounds"],
               "target_ratio": TARGET, "floor_target_ratio": FLOOR_TARGET,
               "best": {"config": best["config"], "ratio": best["ratio"], "floor_ratio": best["floor_ratio"],
                                                "floor_rps": best["floor"]["rps"],
                                                "cpu_ms_per_request": {side: best[side]["cpu_ms_per_request"]
                                                                       for side in ("bare", "floor", "app")},
                                                "app_rps": best["app"]["rps"], "bare_rps": best["bare"]["rps"],
                                                "app_p50_ms": best["app"]["p50_ms"],
                                                "app_p99_ms": best["app"]["p99_ms"],
                                                "bare_p50_ms": best["bare"]["p50_ms"],
                                                "bare_p99_ms": best["bare"]["p99_ms"]},
               "meets_target": best["ratio"] is not None and best["ratio"] >= TARGET,
               "configs": results, "elapsed_s": round(time.perf_counter() - started, 1),
               "load_average_after": common.load_average()}
    print(f"wrote {common.save('ingest', summary)}")
    return summary


def _per_request(run: dict) -> str:
    return "/".join(f"{run['cpu_ms_per_request'][k] or 0:.2f}" for k in COMPONENTS)
