"""What the store-webhook ingest benchmarks share (``stripe_ingest``, ``app_store_ingest``,
``google_play_ingest``): the ledger they check, one measured configuration (the bare endpoint and the app
under the same gunicorn settings, alternating, with the persist floor of ``bench/floor_app.py`` as a third
server; the outbox relay as its own process), the correctness check and the common report lines.

A benchmark brings a *request file maker*: a ``RequestFiles`` whose ``write(label, count) -> SignedPosts``
writes ``count`` new, distinct requests, signed now (``replay`` and ``close`` come with the base class),
and calls ``run_configs`` then ``report`` with what its table and summary add.

Correctness, per configuration: no answer other than 2xx; no request to the app repeated an event;
inbound_events rows lie between the 2xx answers and the requests written (wrk stops its clock with up to
one request per connection in flight, which the server still commits), and one RQ job per row, every
row ``pending``; the duplicate run adds no row; a count-bounded leg (the Python client, which reads every
answer) adds exactly one row per 2xx answer.
"""
from __future__ import annotations

import shutil
import sys
import time
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import NamedTuple

from redis import Redis
from rq import Queue
from sqlalchemy import create_engine, text

from workers.queues import FULFILMENT_QUEUE

from bench import common, floor_app, profile
from bench.common import BenchError, table, verdict
from bench.ingest import FULL as INGEST_FULL
from bench.loadgen import SignedPosts, have_wrk, run_load, run_python
from bench.measure import CpuMeter, service_pids
from bench.procs import Gunicorn, spawn, stop
from bench.profile import Profile

BARE = "bench.bare_app:app"
FLOOR = "bench.floor_app:app"   # persist-before-ack: one committed INSERT of the raw body (bench/floor_app.py)
APP = "app:create_app()"
COMPONENTS = ("gunicorn", "relay", "postgres", "redis", "client")
FLOOR_TARGET = 0.8   # issue 18: a store or Kraty webhook takes >= 0.8 of the persist floor's requests/s
LEG_KEYS = ("requests", "errors", "seconds", "rps", "p50_ms", "p99_ms", "wrapped")
# the options every store benchmark takes; a store adds its own (``{**FULL, "verify": 2000}``)
FULL = dict(configs=INGEST_FULL["configs"], seconds=5.0, rounds=2, warmup=2.0, connections=16, unloaded=3.0,
            duplicates=3.0, exact=1200, exact_connections=8, bare_lines=4000)
QUICK = dict(configs=[("gthread", 2, 2)], seconds=0.5, rounds=1, warmup=0.5, connections=4, unloaded=0.5,
             duplicates=0.5, exact=48, exact_connections=4, bare_lines=400)


def lines_for(rate: float, seconds: float, connections: int) -> int:
    """Enough distinct requests for a time-bounded run at about ``rate`` req/s, with room to spare."""
    return int(rate * seconds * 2) + 50 * connections + 500


def config_name(kind: str, workers: int, threads: int) -> str:
    return f"{kind} w={workers}" + (f" t={threads}" if kind == "gthread" else "")


# ------------------------------------------------------------------------------------------------ request files
class RequestFiles:
    """Files of distinct signed requests (``SignedPosts``), generated on demand into a folder of their own.
    A store's ``write`` hands ``_write`` its lines, each with the ``inbound_events.provider_event_id`` it
    records; ``replay`` keeps the lines of earlier files whose events are recorded. Class attributes:
    ``PATH`` and ``HEADER`` (of the ``SignedPosts``) and ``NOUN`` (what a line is, for the errors)."""
    PATH = ""
    HEADER = ""
    NOUN = "event"

    def __init__(self, workdir: Path, prefix: str):
        self.dir = workdir / f"{prefix}-{uuid.uuid4().hex[:6]}"
        self.dir.mkdir()
        self.serial = 0
        self.ids: dict[str, list[str]] = {}   # file -> the event id of each line

    def _file(self, label: str) -> Path:
        self.serial += 1
        return self.dir / f"{self.serial:02d}-{label}.txt"

    def _write(self, label: str, lines: Iterable[tuple[str, str]]) -> SignedPosts:
        """A new file of ``lines``: (event id, ``<header value>\t<body>``)."""
        path, ids = self._file(label), []
        with open(path, "w") as fh:
            for event_id, line in lines:
                ids.append(event_id)
                fh.write(line + "\n")
        self.ids[str(path)] = ids
        return SignedPosts(self.PATH, self.HEADER, str(path))

    def replay(self, sources: list[SignedPosts], recorded: set[str], limit: int) -> SignedPosts:
        """A file of lines from ``sources`` whose events are already recorded (their signatures still fresh)."""
        path, kept = self._file("duplicates"), 0
        with open(path, "w") as out:
            for source in sources:
                with open(source.file) as fh:
                    for line, event_id in zip(fh, self.ids[source.file], strict=True):
                        if event_id in recorded and kept < limit:
                            out.write(line)
                            kept += 1
        if kept == 0:
            raise BenchError(f"no recorded {self.NOUN} to replay as a duplicate")
        self.ids[str(path)] = []
        return SignedPosts(self.PATH, self.HEADER, str(path))

    def close(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)


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

    def outbox(self) -> int:
        with self.engine.connect() as conn:
            return conn.execute(text("SELECT count(*) FROM outbox")).scalar_one()

    def settle(self, timeout: float = 120.0) -> int:   # a loaded machine: the relay may start late
        """The row count once it stops moving and the outbox's relay has moved every job to RQ: the requests in
        flight when a client stopped its clock are still served (and committed) after it returns."""
        deadline, last = time.monotonic() + timeout, self.rows()
        while time.monotonic() < deadline:
            time.sleep(0.3)
            now = self.rows()
            if now == last and self.outbox() == 0:
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
    """One measured load run against ``server``, with the CPU each process group used meanwhile (``groups``
    holds the outbox relay's process, idle but for the app's runs)."""
    spy = Profile(server.worker_pids()[0], seconds, profile.out_path(spy_name)) if spy_name else None
    meter = CpuMeter({"gunicorn": server.pids(), **groups}).start()
    result = run_load(server.url, label, seconds, opts["connections"], posts=posts)
    cpu = meter.stop()
    if spy is not None and spy.finish():
        print(f"profile of one {label} worker: {spy.out}")
    cpu["client"] = result.client_cpu
    return {**result.as_dict(), "cpu_cores": cpu}


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
    floor_app.create_table(env["KB_DATABASE_URL"])
    fresh: list = []              # every app run that sent new requests: (label, LoadResult-like dict)
    servers = {}
    relay = spawn([sys.executable, "-m", "workers.relay"], env=env, log=workdir / f"relay-{tag}.log")
    groups["relay"] = [relay.pid]
    try:
        servers["bare"] = Gunicorn(BARE, workers, kind, threads, env, workdir / f"gunicorn-{tag}-bare.log")
        servers["floor"] = Gunicorn(FLOOR, workers, kind, threads, env, workdir / f"gunicorn-{tag}-floor.log")
        servers["app"] = Gunicorn(APP, workers, kind, threads, env, workdir / f"gunicorn-{tag}-app.log",
                                  ready_path="/healthz")
        bare_posts = files.write("bare", opts["bare_lines"])
        floor_warm = files.write("warm-floor", lines_for(warm_rate, opts["warmup"], opts["connections"]))
        warm_posts = files.write("warm-app", lines_for(warm_rate, opts["warmup"], opts["connections"]))
        run_load(servers["bare"].url, "warm-bare", opts["warmup"], opts["connections"], posts=bare_posts)
        floor_estimate = run_load(servers["floor"].url, "warm-floor", opts["warmup"], opts["connections"],
                                  posts=floor_warm).rps
        warm = run_load(servers["app"].url, "warm-app", opts["warmup"], opts["connections"], posts=warm_posts)
        fresh.append(("warm-up", warm.as_dict()))
        estimate = warm.rps
        slices: dict[str, list] = {"bare": [], "floor": [], "app": []}
        app_files = []
        for n in range(opts["rounds"]):
            for label, server in servers.items():
                if label == "bare":
                    posts, spy_name = bare_posts, None
                elif label == "floor":   # new requests every round, as the app's: the floor inserts each
                    posts = files.write(f"floor-{n}", lines_for(floor_estimate, opts["seconds"], opts["connections"]))
                    spy_name = None
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
            posts = bare_posts if label == "bare" else files.write(f"one-{label}", lines_for(rate, opts["unloaded"], 1))
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
        stop(relay)
        files.close()
    out = {"config": config_name(kind, workers, threads), "worker_class": kind, "workers": workers,
           "threads": threads}
    for label in servers:
        out[label] = common.combine(slices[label], unloaded[label], COMPONENTS)
    bare_rps = out["bare"]["rps"]
    for key, run in (*extras.items(), ("duplicates", duplicates)):
        out[key] = leg(run, bare_rps)
    out["ratio"] = round(out["app"]["rps"] / bare_rps, 3) if bare_rps else None
    out["floor_ratio"] = round(out["app"]["rps"] / out["floor"]["rps"], 3) if out["floor"]["rps"] else None
    out["correctness"] = check(fresh, ledger, (rows_before_dup, rows_after_dup, jobs_before_dup, jobs_after_dup,
                                               duplicates), (rows_before_exact, rows_after_exact, exact))
    return out


def run_configs(tag: str, backends: common.Backends, env: dict, workdir: Path, opts: dict,
                files: Callable[[], object], warm_rate: float, extra_legs=None,
                before: Callable[[], None] | None = None, after: Callable[[dict], None] | None = None) -> list[dict]:
    """``run_config`` for each of ``opts["configs"]`` (``files()`` a new request file maker for each), on one
    ledger cleared at the end; ``before()`` ahead of each configuration, ``after(result)`` on its result."""
    ledger = Ledger(backends.database_url, backends.redis_url)
    results = []
    try:
        for kind, workers, threads in opts["configs"]:
            if before is not None:
                before()
            result = run_config(tag, kind, workers, threads, env, ledger, workdir, files(), opts, warm_rate,
                                extra_legs)
            if after is not None:
                after(result)
            results.append(result)
        ledger.clear()
    finally:
        ledger.close()
    return results


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
    print("CPU ms/req = CPU time per request of gunicorn (master+workers) / the outbox relay (python -m workers.relay: "
          "moves each event's job to RQ) / PostgreSQL (our backends + server processes) / redis-server / the load client")


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
    out = {"config": best["config"], "ratio": best["ratio"], "floor_ratio": best["floor_ratio"],
           "app_rps": best["app"]["rps"], "bare_rps": best["bare"]["rps"], "floor_rps": best["floor"]["rps"],
           "cpu_ms_per_request": {side: best[side]["cpu_ms_per_request"] for side in ("bare", "floor", "app")}, "app_p50_ms": best["app"]["p50_ms"], "app_p99_ms": best["app"]["p99_ms"],
           "bare_p50_ms": best["bare"]["p50_ms"], "bare_p99_ms": best["bare"]["p99_ms"]}
    for prefix, name in legs.items():
        out[f"{prefix}_rps"], out[f"{prefix}_ratio"] = best[name]["rps"], best[name]["ratio"]
    return out


class Leg(NamedTuple):
    """A secondary app leg as the report shows it."""
    key: str        # its figures in each configuration's result ("production")
    short: str      # its table columns ("prod req/s", "prod ratio")
    name: str       # in the best-throughput line ("Production")
    prefix: str     # its figures in the summary's best ("production_rps")
    note: str       # in the client line ("prod = 3 s of Production notifications")


def duplicates_leg(opts: dict, what: str) -> Leg:
    """The duplicate-delivery leg; ``what``: the recorded requests, plural ("events")."""
    return Leg("duplicates", "dup", "duplicates", "duplicate",
               f"dup = {opts['duplicates']:.0f} s replaying recorded {what}")


def report(name: str, title: str, backends: common.Backends, opts: dict, quick: bool, results: list[dict],
           started: float, target: float, workload: str, legs: tuple[Leg, ...],
           columns: dict[str, Callable[[dict], object]] | None = None, legend: tuple[str, ...] = (),
           in_process: str | None = None, extra: dict | None = None) -> dict:
    """Prints a store benchmark's report, writes its summary (``bench/results/<name>.json``) and returns it;
    BenchError if a configuration failed the ledger check. ``title``: the heading's start; ``workload``:
    what an app request is, in the client line; ``legs``: the secondary legs (their columns, best figures,
    notes); ``columns``: {heading: value of a configuration's result} put before the ledger check;
    ``legend``: lines after the CPU legend; ``in_process``: a line after the ledger checks; ``extra``: more
    summary keys, after ``best``."""
    columns = columns or {}
    best = max(results, key=lambda r: r["app"]["rps"])
    client = results[0]["bare"]["client"]
    print(f"\n{title} vs bare Flask endpoint, same gunicorn settings  [{backends.describe()}]")
    print(f"client: {client}, {opts['connections']} keep-alive connections; per configuration {opts['rounds']} "
          f"round(s) of bare {opts['seconds']:.0f} s then app {opts['seconds']:.0f} s, after {opts['warmup']:.1f} s "
          f"warm-up; {workload}; p50 = mean over rounds, p99 = worst round; " + "; ".join(leg.note for leg in legs))
    rows = []
    for r in results:
        b, f, a = r["bare"], r["floor"], r["app"]
        rows.append([r["config"], b["rps"], b["p50_ms"], b["p99_ms"], f["rps"], f["p50_ms"], f["p99_ms"], a["rps"],
                     a["p50_ms"], a["p99_ms"], r["ratio"], r["floor_ratio"],
                     *(r[leg.key][k] for leg in legs for k in ("rps", "ratio")), a["errors"],
                     f"{b['unloaded']['p50_ms']:.2f}/{b['unloaded']['p99_ms']:.2f}",
                     f"{f['unloaded']['p50_ms']:.2f}/{f['unloaded']['p99_ms']:.2f}",
                     f"{a['unloaded']['p50_ms']:.2f}/{a['unloaded']['p99_ms']:.2f}", per_request(b), per_request(f),
                     per_request(a), *(value(r) for value in columns.values()),
                     "ok" if r["correctness"]["ok"] else "FAILED"])
    print(table(["gunicorn", "bare req/s", "p50 ms", "p99 ms", "floor req/s", "p50 ms", "p99 ms", "app req/s",
                 "p50 ms", "p99 ms", "vs bare", "vs floor",
                 *(f"{leg.short} {k}" for leg in legs for k in ("req/s", "ratio")), "errors", "bare 1-conn p50/p99",
                 "floor 1-conn p50/p99", "app 1-conn p50/p99", "bare: CPU ms/req", "floor: CPU ms/req",
                 "app: CPU ms/req", *columns, "ledger check"], rows))
    print("floor: the same gunicorn serving bench/floor_app.py, which commits one INSERT of the raw body into an "
          "indexed table and answers (persist before acknowledging, none of our code)")
    print_cpu_legend()
    for line in legend:
        print(line)
    print_ledger_checks(results)
    if in_process is not None:
        print(in_process)
    print(f"best app throughput: {best['config']}: ratio {best['ratio']} vs bare (target >= {target}: "
          f"{verdict(best['ratio'], target)}), {best['floor_ratio']} vs the persist floor (target >= "
          f"{FLOOR_TARGET}: {verdict(best['floor_ratio'], FLOOR_TARGET)}); " + "; ".join(f"{leg.name} {best[leg.key]['rps']:,.0f} req/s "
                                                             f"(ratio {best[leg.key]['ratio']})" for leg in legs))
    headroom = client_check(results, best)
    summary = {"benchmark": name, "quick": quick, "backends": backends.describe(), "client": client,
               "wrk_installed": have_wrk(), "client_headroom": round(headroom, 1), "connections": opts["connections"],
               "seconds": opts["seconds"], "rounds": opts["rounds"], "target_ratio": target,
               "floor_target_ratio": FLOOR_TARGET,
               "best": best_summary(best, **{leg.prefix: leg.key for leg in legs}), **(extra or {}),
               "meets_target": best["ratio"] is not None and best["ratio"] >= target,
               "correct": all(r["correctness"]["ok"] for r in results),
               "configs": results, "elapsed_s": round(time.perf_counter() - started, 1),
               "load_average_after": common.load_average()}
    print(f"wrote {common.save(name, summary)}")
    raise_if_incorrect(results)
    return summary


def raise_if_incorrect(results: list[dict]) -> None:
    """BenchError listing the problems unless every configuration passed the ledger check."""
    if not all(r["correctness"]["ok"] for r in results):
        raise BenchError("the ledger check failed: " + "; ".join(p for r in results
                                                                  for p in r["correctness"]["problems"]))
