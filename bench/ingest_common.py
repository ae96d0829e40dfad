"""What the store-webhook ingest benchmarks share (``stripe_ingest``, ``app_store_ingest``,
``google_play_ingest``): the ledger they check, one measured configuration (the bare endpoint and the app
under the same gunicorn settings, alternating), the correctness check and the common report lines.

A benchmark brings a *request file maker*: an object with ``write(label, count) -> SignedPosts`` (``count``
new, distinct requests, signed now), ``replay(sources, recorded, limit) -> SignedPosts`` (lines of
``sources`` whose events are already recorded, by ``inbound_events.provider_event_id``) and ``close()``.

Correctness, per configuration: no answer other than 2xx; no request to the app repeated an event;
inbound_events rows lie between the 2xx answers and the requests written (wrk stops its clock with up to
one request per connection in flight, which the server still commits), and one RQ job per row, every
row ``pending``; the duplicate run adds no row; a count-bounded leg (the Python client, which reads every
answer) adds exactly one row per 2xx answer.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from redis import Redis
from rq import Queue
from sqlalchemy import create_engine, text

from workers.queues import FULFILMENT_QUEUE

from . import common, profile
from .common import BenchError
from .loadgen import SignedPosts, run_load, run_python
from .measure import CpuMeter, service_pids
from .procs import Gunicorn
from .profile import Profile

BARE = "bench.bare_app:app"
APP = "app:create_app()"
COMPONENTS = ("gunicorn", "postgres", "redis", "client")
LEG_KEYS = ("requests", "errors", "seconds", "rps", "p50_ms", "p99_ms", "wrapped")


def lines_for(rate: float, seconds: float, connections: int) -> int:
    """Enough distinct requests for a time-bounded run at about ``rate`` req/s, with room to spare."""
    return int(rate * seconds * 2) + 50 * connections + 500


def config_name(kind: str, workers: int, threads: int) -> str:
    return f"{kind} w={workers}" + (f" t={threads}" if kind == "gthread" else "")


# ------------------------------------------------------------------------------------------------ ledger
class Ledger:
    def __init__(self, database_url: str, redis_url: str):
        self.engine = create_engine(database_url)
        self.redis = Redis.from_url(redis_url)

    def clear(self) -> None:
        common.clear_ledger(self.engine)
        self.redis.flushdb()

    def rows(self) -> int:
        with self.engine.connect() as conn:
            return conn.execute(text("SELECT count(*) FROM inbound_events")).scalar_one()

    def settle(self, timeout: float = 30.0) -> int:
        """The row count once it stops moving: the requests in flight when a client stopped its clock are
        still served (and committed) after it returns."""
        deadline, last = time.monotonic() + timeout, self.rows()
        while time.monotonic() < deadline:
            time.sleep(0.3)
            now = self.rows()
            if now == last:
                return now
            last = now
        raise BenchError(f"inbound_events still growing {timeout:.0f} s after the load stopped")

    def recorded(self) -> set[str]:
        with self.engine.connect() as conn:
            return set(conn.execute(text("SELECT provider_event_id FROM inbound_events")).scalars())

    def outcomes(self) -> dict:
        with self.engine.connect() as conn:
            return dict(conn.execute(text("SELECT outcome, count(*) FROM inbound_events GROUP BY outcome")).all())

    def jobs(self) -> int:
        return Queue(FULFILMENT_QUEUE, connection=self.redis).count

    def close(self) -> None:
        self.engine.dispose()
        self.redis.close()


# ------------------------------------------------------------------------------------------------ runs
def slice_run(server: Gunicorn, groups: dict, posts: SignedPosts, opts: dict, label: str, seconds: float,
              spy_name: str | None = None) -> dict:
    """One measured load run against ``server``, with the CPU each process group used meanwhile."""
    spy = Profile(server.worker_pids()[0], seconds, profile.out_path(spy_name)) if spy_name else None
    meter = CpuMeter({"gunicorn": server.pids(), **groups}).start()
    result = run_load(server.url, label, seconds, opts["connections"], posts=posts)
    cpu = meter.stop()
    if spy is not None and spy.finish():
        print(f"profile of one {label} worker: {spy.out}")
    cpu["client"] = result.client_cpu
    return {**result.as_dict(), "cpu_cores": cpu}


def combine(slices: list[dict], unloaded) -> dict:
    """Rounds of one side added up: req/s over all rounds, p50 the mean, p99 the worst of the rounds."""
    requests, seconds = sum(s["requests"] for s in slices), sum(s["seconds"] for s in slices)
    rps = round(requests / seconds, 1) if seconds else 0.0
    cpu = {k: round(sum((s["cpu_cores"].get(k) or 0) * s["seconds"] for s in slices) / seconds, 3)
           for k in COMPONENTS} if seconds else {}
    p50s = [s["p50_ms"] for s in slices if s["p50_ms"] is not None]
    p99s = [s["p99_ms"] for s in slices if s["p99_ms"] is not None]
    return {"client": slices[0]["client"], "connections": slices[0]["connections"], "requests": requests,
            "errors": sum(s["errors"] for s in slices), "wrapped": sum(s["wrapped"] or 0 for s in slices),
            "seconds": round(seconds, 3), "rps": rps,
            "p50_ms": round(sum(p50s) / len(p50s), 2) if p50s else None, "p99_ms": max(p99s) if p99s else None,
            "cpu_cores": cpu, "cpu_ms_per_request": {k: round(v / rps * 1000, 3) if rps else None
                                                     for k, v in cpu.items()},
            "unloaded": {"rps": unloaded.rps, "p50_ms": unloaded.p50_ms, "p99_ms": unloaded.p99_ms,
                         "errors": unloaded.errors},
            "rounds": slices}


def leg(run: dict, bare_rps: float) -> dict:
    """A secondary app leg (duplicates, Production...): its figures, CPU per request and ratio to the bare rate."""
    out = {k: run[k] for k in LEG_KEYS}
    out["cpu_ms_per_request"] = {k: round((run["cpu_cores"].get(k) or 0) / run["rps"] * 1000, 3)
                                 if run["rps"] else None for k in COMPONENTS}
    out["ratio"] = round(run["rps"] / bare_rps, 3) if bare_rps else None
    return out


def run_config(tag: str, kind: str, workers: int, threads: int, env: dict, ledger: Ledger, workdir: Path, files,
               opts: dict, warm_rate: float,
               extra_legs: Callable[[Gunicorn, dict, dict, object], dict[str, dict]] | None = None) -> dict:
    """One gunicorn configuration: both servers up side by side (an idle one costs nothing); bare and app
    runs alternate, so a burst of other work on the shared machine hits both sides alike. Then
    ``extra_legs(app_server, groups, slices, files)`` (more runs of new requests: ``{name: slice}``), a
    duplicate run replaying recorded requests, one-connection runs and a count-bounded leg. ``files``
    (the request file maker) is closed at the end. ``tag`` names the logs and profiles."""
    groups = service_pids(env["KB_DATABASE_URL"])
    ledger.clear()
    fresh: list = []              # every app run that sent new requests: (label, LoadResult-like dict)
    servers = {}
    try:
        servers["bare"] = Gunicorn(BARE, workers, kind, threads, env, workdir / f"gunicorn-{tag}-bare.log")
        servers["app"] = Gunicorn(APP, workers, kind, threads, env, workdir / f"gunicorn-{tag}-app.log",
                                  ready_path="/healthz")
        bare_posts = files.write("bare", opts["bare_lines"])
        warm_posts = files.write("warm-app", lines_for(warm_rate, opts["warmup"], opts["connections"]))
        run_load(servers["bare"].url, "warm-bare", opts["warmup"], opts["connections"], posts=bare_posts)
        warm = run_load(servers["app"].url, "warm-app", opts["warmup"], opts["connections"], posts=warm_posts)
        fresh.append(("warm-up", warm.as_dict()))
        estimate = warm.rps
        slices: dict[str, list] = {"bare": [], "app": []}
        app_files = []
        for n in range(opts["rounds"]):
            for label, server in servers.items():
                if label == "bare":
                    posts, spy_name = bare_posts, None
                else:
                    posts = files.write(f"app-{n}", lines_for(estimate, opts["seconds"], opts["connections"]))
                    app_files.append(posts)
                    spy_name = f"{tag}-app-{kind}-w{workers}" if n == 0 else None
                slices[label].append(slice_run(server, groups, posts, opts, label, opts["seconds"], spy_name))
                if label == "app":
                    fresh.append((f"round {n + 1}", slices[label][-1]))
        extras = extra_legs(servers["app"], groups, slices, files) if extra_legs else {}
        fresh.extend(extras.items())
        rows_before_dup, jobs_before_dup = ledger.settle(), ledger.jobs()
        dup_posts = files.replay(app_files, ledger.recorded(), limit=50_000)
        duplicates = slice_run(servers["app"], groups, dup_posts, opts, "app-duplicates", opts["duplicates"])
        rows_after_dup, jobs_after_dup = ledger.settle(), ledger.jobs()
        unloaded = {}
        for label, server in servers.items():
            rate = max(s["rps"] for s in slices[label])
            posts = bare_posts if label == "bare" else files.write("one-app", lines_for(rate, opts["unloaded"], 1))
            unloaded[label] = run_load(server.url, f"one-{label}", opts["unloaded"], 1, posts=posts)
            if label == "app":
                fresh.append(("1 connection", unloaded[label].as_dict()))
        rows_before_exact = ledger.settle()
        exact = run_python(servers["app"].url, "exact", opts["exact_connections"], total=opts["exact"], processes=1,
                           posts=files.write("exact", opts["exact"]))
        fresh.append(("count-bounded", exact.as_dict()))
        rows_after_exact = ledger.settle()
    finally:
        for server in servers.values():
            server.close()
        files.close()
    out = {"config": config_name(kind, workers, threads), "worker_class": kind, "workers": workers,
           "threads": threads}
    for label in servers:
        out[label] = combine(slices[label], unloaded[label])
    bare_rps = out["bare"]["rps"]
    for key, run in (*extras.items(), ("duplicates", duplicates)):
        out[key] = leg(run, bare_rps)
    out["ratio"] = round(out["app"]["rps"] / bare_rps, 3) if bare_rps else None
    out["correctness"] = check(fresh, ledger, (rows_before_dup, rows_after_dup, jobs_before_dup, jobs_after_dup,
                                               duplicates), (rows_before_exact, rows_after_exact, exact))
    return out


def check(fresh: list, ledger: Ledger, dup: tuple, exact: tuple) -> dict:
    """See the module's docstring."""
    answered = sum(r["requests"] - r["errors"] for _, r in fresh)
    sent = sum(r["sent"] if r["sent"] is not None else r["requests"] for _, r in fresh)
    errors = sum(r["errors"] for _, r in fresh)
    repeated = sum(r["wrapped"] or 0 for _, r in fresh)
    rows_before_dup, rows_after_dup, jobs_before_dup, jobs_after_dup, duplicates = dup
    rows_before_exact, rows_after_exact, exact_run = exact
    rows, jobs, outcomes = ledger.rows(), ledger.jobs(), ledger.outcomes()
    exact_added = rows_after_exact - rows_before_exact
    problems = []
    if errors or duplicates["errors"] or exact_run.errors:
        problems.append(f"non-2xx or failed answers: {errors} fresh, {duplicates['errors']} duplicate, "
                        f"{exact_run.errors} count-bounded")
    if repeated:
        problems.append(f"{repeated} requests to the app repeated an event (the request files were too short)")
    if not answered <= rows <= sent:
        problems.append(f"inbound_events rows {rows} not between the 2xx answers {answered} and the requests "
                        f"written {sent}")
    if jobs != rows:
        problems.append(f"{jobs} RQ jobs queued for {rows} recorded events")
    if outcomes.keys() - {"pending"}:
        problems.append(f"outcomes {outcomes}")
    if rows_after_dup != rows_before_dup or jobs_after_dup != jobs_before_dup:
        problems.append(f"the duplicate run changed rows {rows_before_dup}->{rows_after_dup}, "
                        f"jobs {jobs_before_dup}->{jobs_after_dup}")
    if exact_added != exact_run.requests - exact_run.errors:
        problems.append(f"count-bounded leg: {exact_run.requests - exact_run.errors} 2xx answers, {exact_added} "
                        "rows added")
    return {"ok": not problems, "problems": problems, "answered_2xx": answered, "requests_written": sent,
            "inbound_events": rows, "rq_jobs": jobs, "in_flight_at_stop": sent - answered,
            "duplicate_answers_2xx": duplicates["requests"] - duplicates["errors"],
            "duplicate_rows_added": rows_after_dup - rows_before_dup,
            "exact_leg": {"answered_2xx": exact_run.requests - exact_run.errors, "errors": exact_run.errors,
                          "rows_added": exact_added}}


# ------------------------------------------------------------------------------------------------ reporting
def per_request(run: dict) -> str:
    return "/".join(f"{run['cpu_ms_per_request'][k] or 0:.2f}" for k in COMPONENTS)


def print_cpu_legend() -> None:
    print("1-conn: latency with one connection (no queueing); p50/p99 under load include queueing.")
    print("CPU ms/req = CPU time per request of gunicorn (master+workers) / PostgreSQL (our backends + server "
          "processes) / redis-server / the load client")


def print_ledger_checks(results: list[dict]) -> None:
    for r in results:
        c = r["correctness"]
        print(f"ledger check {r['config']}: {c['answered_2xx']} 2xx answers, {c['requests_written']} requests "
              f"written ({c['in_flight_at_stop']} in flight when the client stopped), {c['inbound_events']} "
              f"inbound_events rows, {c['rq_jobs']} RQ jobs; duplicates: {c['duplicate_answers_2xx']} 2xx, "
              f"{c['duplicate_rows_added']} rows added; count-bounded leg: {c['exact_leg']['answered_2xx']} 2xx, "
              f"{c['exact_leg']['rows_added']} rows added" + ("" if c["ok"] else f"; PROBLEMS: {c['problems']}"))


def client_check(results: list[dict], best: dict) -> float:
    """Prints whether the load client could be what limits the app; the bare/app headroom."""
    top_bare = max(r["bare"]["rps"] for r in results)
    headroom = top_bare / max(best["app"]["rps"], 1)
    print(f"client check: this client drove the bare endpoint at {top_bare:,.0f} req/s, {headroom:.1f}x the best app "
          f"rate" + (": the client is not what limits the app" if headroom >= 2 else
                     ": too close to tell whether the client limits the app"))
    return headroom


def best_summary(best: dict, **legs: str) -> dict:
    """The summary's ``best``: the best configuration's figures; ``legs``: {key prefix: secondary leg}."""
    out = {"config": best["config"], "ratio": best["ratio"], "app_rps": best["app"]["rps"],
           "bare_rps": best["bare"]["rps"], "app_p50_ms": best["app"]["p50_ms"], "app_p99_ms": best["app"]["p99_ms"],
           "bare_p50_ms": best["bare"]["p50_ms"], "bare_p99_ms": best["bare"]["p99_ms"]}
    for prefix, name in legs.items():
        out[f"{prefix}_rps"], out[f"{prefix}_ratio"] = best[name]["rps"], best[name]["ratio"]
    return out


def raise_if_incorrect(results: list[dict]) -> None:
    """BenchError listing the problems unless every configuration passed the ledger check."""
    if not all(r["correctness"]["ok"] for r in results):
        raise BenchError("the ledger check failed: " + "; ".join(p for r in results
                                                                  for p in r["correctness"]["problems"]))
