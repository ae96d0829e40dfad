"""End to end: orders reaching FULFILLED per second through RQ workers (against the emulator) vs two floors
measured in the same run, same Redis, same worker command (``python -m workers --burst``, rq's SimpleWorker),
same worker count: no-op RQ jobs, and floor jobs that make one Kraty call and one committed UPDATE each with
none of our code (``bench/onecall.py``). Targets: at least 0.6 of the floor job rate and 0.5 of the no-op job
rate, and worker CPU per order at most twice a no-op job's.

Orders are recorded straight into the ledger in RECEIVED state and their fulfil jobs enqueued, so
every grant goes through a worker (not the PUT's inline attempt). The rate is taken from RQ's own
job timestamps (first start to last end), so worker start-up is left out of both; the wall time
from spawning the workers to the last order FULFILLED (polled in the database) is shown too.
"""
from __future__ import annotations

import resource
import sys
import time
from collections import Counter
from pathlib import Path

from rq import Queue
from sqlalchemy import func, select

from middleware.ledger import states
from middleware.ledger.models import Fulfilment, FulfilmentItem, HistoryEntry
from workers.queues import FULFILMENT_QUEUE

from bench import common, procs, profile, seed
from bench.common import BenchError, table, verdict
from bench.measure import CpuMeter, service_pids
from bench.procs import Emulator
from bench.profile import Profile

TARGET = 0.5          # of the no-op job rate
FLOOR_TARGET = 0.6    # of the one-call floor job rate
CPU_TARGET = 2.0      # worker CPU per order, at most this many no-op jobs' worth
KINDS = ("noop", "floor", "orders")
FULL = dict(orders=2000, workers=2, rounds=2, timeout=600)
QUICK = dict(orders=40, workers=2, rounds=1, timeout=90)
UNMEASURABLE = "not measurable (a leg's jobs cost less CPU than the noise in the workers' start-up at this size)"


def _done_orders(svc) -> int:
    with svc.session() as session:
        return session.scalar(select(func.count()).select_from(Fulfilment)
                              .where(Fulfilment.state == states.FULFILLED))


def _done_jobs(redis) -> int:
    return Queue(FULFILMENT_QUEUE, connection=redis).finished_job_registry.count


def _diagnose(redis, job_ids: list[str]) -> str:
    """What became of the jobs: were they run, failed, or gone (another client flushed the database)?"""
    from rq.job import Job
    q = Queue(FULFILMENT_QUEUE, connection=redis)
    sample = Job.fetch_many(job_ids[:3] + job_ids[-3:], connection=redis)
    statuses = [job.get_status(refresh=False) if job else "missing" for job in sample]
    db = redis.connection_pool.connection_kwargs.get("db", 0)
    clients = [c for c in redis.client_list() if str(c.get("db")) == str(db)]
    return (f"queued {q.count}, failed {q.failed_job_registry.count}, keys in db {redis.dbsize()}, sample job "
            f"statuses {statuses}, other clients on this db: {[(c.get('name'), c.get('cmd')) for c in clients]}")


def _ledger_check(svc, emulator: Emulator) -> dict:
    """Every order FULFILLED with one history entry saying so, and exactly one Kraty ledger entry per order
    (the one its item row names): nothing granted twice, nothing missing."""
    with svc.session() as session:
        rows = session.execute(select(Fulfilment.transaction_id, Fulfilment.state, FulfilmentItem.kraty_entry_id)
                               .join(FulfilmentItem)).all()
        fulfilled_entries = session.scalar(select(func.count()).select_from(HistoryEntry)
                                           .where(HistoryEntry.to_state == states.FULFILLED,
                                                  HistoryEntry.from_state != states.FULFILLED))
    entries = emulator.session.get(emulator.url + "/_emulator/ledger", params={"game": "demo"}, timeout=60).json()
    by_ref = Counter(e.get("sourceRefId") for e in entries["entries"])
    ids = {e["id"] for e in entries["entries"]}
    check = {"orders": len(rows), "not_fulfilled": sum(state != states.FULFILLED for _, state, _ in rows),
             "kraty_entries": entries["count"], "orders_granted_twice": sum(by_ref[txn] > 1 for txn, _, _ in rows),
             "orders_not_granted": sum(by_ref[txn] == 0 for txn, _, _ in rows),
             "entry_not_in_kraty": sum(entry not in ids for _, _, entry in rows),
             "fulfilled_history_entries": fulfilled_entries}
    check["passed"] = (check["not_fulfilled"] == check["orders_granted_twice"] == check["orders_not_granted"]
                       == check["entry_not_in_kraty"] == 0 and check["kraty_entries"] == len(rows)
                       == fulfilled_entries)
    return check


def _percentile(values: list[float], share: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def startup_cpu(svc, env: dict, workdir: Path, workers: int) -> float:
    """CPU seconds one ``python -m workers --burst`` takes to start, find the queues empty and exit: taken off
    each leg's worker CPU to give the CPU per job net of start-up."""
    svc.redis.flushdb()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    worker_procs = [procs.spawn([sys.executable, "-m", "workers", "--burst"], env=env,
                                log=workdir / "worker-empty.log") for _ in range(workers)]
    for p in worker_procs:
        p.wait(120)
        procs.stop(p)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ((after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)) / workers


def run_leg(kind: str, svc, emulator: Emulator, env: dict, workdir: Path, count: int, workers: int,
            timeout: float, startup: float = 0.0) -> dict:
    """One measured leg: ``kind`` is "orders", "floor" or "noop"."""
    redis = svc.redis
    redis.flushdb()
    if kind in ("orders", "floor"):
        common.clear_ledger(svc.engine)
        emulator.reset()
        ids = seed.record_received(svc, count)
        job_ids = seed.enqueue_orders(svc, ids) if kind == "orders" else seed.enqueue_floor(redis, ids)
    else:
        job_ids = seed.enqueue_noops(redis, count)

    def done() -> int:
        return _done_orders(svc) if kind != "noop" else _done_jobs(redis)
    meter = CpuMeter({"emulator": emulator.pids(), **service_pids(env["KB_DATABASE_URL"])}).start()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    log = workdir / f"worker-{kind}.log"
    worker_procs = [procs.spawn([sys.executable, "-m", "workers", "--burst"], env=env, log=log)
                    for _ in range(workers)]
    spy = Profile(worker_procs[0].pid, None, profile.out_path(f"e2e-{kind}"), idle=False) \
        if kind == "orders" else None   # on-CPU samples only: where the worker's CPU goes
    finished = 0
    while finished < count:
        if time.perf_counter() - t0 > timeout:
            raise BenchError(f"e2e {kind}: only {finished} of {count} done after {timeout:.0f} s")
        if all(p.poll() is not None for p in worker_procs) and done() < count:
            codes = [p.returncode for p in worker_procs]
            raise BenchError(f"e2e {kind}: workers exited (codes {codes}) with {done()} of {count} done; "
                             f"{_diagnose(redis, job_ids)}; worker log:\n{procs.log_tail(log)}")
        time.sleep(0.05)
        finished = done()
    wall = time.perf_counter() - t0
    for p in worker_procs:
        p.wait(60)
        procs.stop(p)
    cpu = meter.stop()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    elapsed = time.perf_counter() - t0
    worker_seconds = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    cpu["workers"] = round(worker_seconds / elapsed, 2)
    if spy is not None and spy.finish():
        print(f"profile of one worker ({kind}): {spy.out}")
    window, jobs_finished, durations = seed.job_times(redis, job_ids)
    p50, p99 = _percentile(durations, 0.50), _percentile(durations, 0.99)
    out = {"kind": kind, "count": count, "workers": workers, "jobs_finished": jobs_finished,
           "window_s": round(window, 3), "per_second": round(count / window, 1) if window else None,
           "p50_ms": round(p50 * 1000, 2) if p50 is not None else None,
           "p99_ms": round(p99 * 1000, 2) if p99 is not None else None,
           "wall_s": round(wall, 3), "wall_per_second": round(count / wall, 1), "cpu_cores": cpu,
           "cpu_ms_per_job": {k: round(v * elapsed / count * 1000, 3) for k, v in cpu.items()},
           "worker_cpu_ms_per_job_net": round(max(0.0, worker_seconds - startup * workers) / count * 1000, 3)}
    if kind == "orders":
        with svc.session() as session:
            out["ledger_states"] = dict(session.execute(select(Fulfilment.state, func.count())
                                                        .group_by(Fulfilment.state)).all())
        out["ledger_check"] = _ledger_check(svc, emulator)
    return out


def _best(legs: list[dict], kind: str) -> dict:
    return max((leg for leg in legs if leg["kind"] == kind), key=lambda leg: leg["per_second"] or 0)


def _ratio(a, b) -> float | None:
    return round(a / b, 3) if a and b else None


def run(backends: common.Backends, workdir: Path, quick: bool = False) -> dict:
    opts = QUICK if quick else FULL
    common.reset_ledger(backends.database_url)
    emulator = Emulator(workdir)
    started = time.perf_counter()
    legs: list[dict] = []
    try:
        env, svc = procs.app_services(backends, workdir, emulator)
        env.update(KB_BENCH_KRATY_URL=emulator.url, KB_BENCH_KRATY_KEY=svc.catalog.game("demo").server_key)
        try:
            startup = startup_cpu(svc, env, workdir, opts["workers"])
            for _ in range(opts["rounds"]):
                for kind in KINDS:
                    legs.append(run_leg(kind, svc, emulator, env, workdir, opts["orders"], opts["workers"],
                                        opts["timeout"], startup))
        finally:
            svc.redis.flushdb()
            svc.close()
    finally:
        emulator.close()
    noop, floor, orders = _best(legs, "noop"), _best(legs, "floor"), _best(legs, "orders")
    ratio = _ratio(orders["per_second"], noop["per_second"])
    floor_ratio = _ratio(orders["per_second"], floor["per_second"])
    cpu_ratio = _ratio(orders["worker_cpu_ms_per_job_net"], noop["worker_cpu_ms_per_job_net"])
    check = orders.get("ledger_check", {})
    print(f"\nE2E  orders FULFILLED/s through RQ workers vs one-call floor jobs/s and no-op RQ jobs/s  "
          f"[{backends.describe()}]")
    print(f"{opts['workers']} x `python -m workers --burst` (SimpleWorker), {opts['orders']} orders / jobs per leg, "
          f"{opts['rounds']} round(s), best of each; rate = jobs / (first job start .. last job end); "
          "p50/p99 = one job's run time")
    rows = [[leg["kind"], leg["count"], leg["per_second"], leg["p50_ms"], leg["p99_ms"], leg["window_s"],
             leg["wall_s"], leg["worker_cpu_ms_per_job_net"],
             "/".join(f"{leg['cpu_ms_per_job'].get(k, 0):.2f}" for k in ("workers", "emulator", "postgres", "redis")),
             "/".join(f"{leg['cpu_cores'].get(k, 0):.2f}" for k in ("workers", "emulator", "postgres", "redis"))]
            for leg in legs]
    print(table(["leg", "jobs", "per s", "p50 ms", "p99 ms", "window s", "wall s", "worker CPU ms/job net",
                 "CPU ms/job", "cores busy"], rows))
    print("CPU columns: worker processes (start-up included) / emulator / PostgreSQL / redis-server; net: the "
          f"workers' CPU less {startup * 1000:.0f} ms per worker of start-up (measured on empty queues), per job")
    print(f"orders/s {orders['per_second']} vs floor jobs/s {floor['per_second']}: ratio {floor_ratio} "
          f"(target >= {FLOOR_TARGET}: {verdict(floor_ratio, FLOOR_TARGET)})")
    print(f"orders/s {orders['per_second']} vs no-op jobs/s {noop['per_second']}: ratio {ratio} "
          f"(target >= {TARGET}: {verdict(ratio, TARGET)})")
    print(f"worker CPU per order {orders['worker_cpu_ms_per_job_net']} ms vs per no-op job "
          f"{noop['worker_cpu_ms_per_job_net']} ms (net of start-up): "
          f"{f'{cpu_ratio}x' if cpu_ratio is not None else UNMEASURABLE} (target <= {CPU_TARGET}: "
          f"{verdict(cpu_ratio, CPU_TARGET + 1e-9, higher_is_better=False)}); PostgreSQL CPU per order "
          f"{orders['cpu_ms_per_job'].get('postgres')} ms (floor job {floor['cpu_ms_per_job'].get('postgres')} ms)")
    print(f"ledger check: {'passed' if check.get('passed') else 'FAILED'} {check}")
    meets = (ratio is not None and ratio >= TARGET and floor_ratio is not None and floor_ratio >= FLOOR_TARGET
             and cpu_ratio is not None and cpu_ratio <= CPU_TARGET)
    summary = {"benchmark": "e2e", "quick": quick, "backends": backends.describe(), "workers": opts["workers"],
               "orders": opts["orders"], "orders_per_second": orders["per_second"],
               "noop_jobs_per_second": noop["per_second"], "floor_jobs_per_second": floor["per_second"],
               "ratio": ratio, "target_ratio": TARGET, "floor_ratio": floor_ratio, "floor_target": FLOOR_TARGET,
               "worker_startup_cpu_ms": round(startup * 1000, 1), "worker_cpu_ratio": cpu_ratio,
               "worker_cpu_target": CPU_TARGET, "ledger_check": check,
               "meets_target": meets and bool(check.get("passed")), "legs": legs,
               "elapsed_s": round(time.perf_counter() - started, 1),
               "load_average_after": common.load_average()}
    print(f"wrote {common.save('e2e', summary)}")
    return summary
