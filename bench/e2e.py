"""End to end: orders reaching FULFILLED per second through RQ workers (against the emulator) vs raw
no-op RQ jobs per second, same Redis, same worker command (``python -m workers --burst``, rq's
SimpleWorker), same worker count. Target: at least half the no-op job rate.

Orders are recorded straight into the ledger in RECEIVED state and their fulfil jobs enqueued, so
every grant goes through a worker (not the PUT's inline attempt). The rate is taken from RQ's own
job timestamps (first start to last end), so worker start-up is left out of both; the wall time
from spawning the workers to the last order FULFILLED (polled in the database) is shown too.
"""
from __future__ import annotations

import resource
import sys
import time
from pathlib import Path

from rq import Queue
from sqlalchemy import func, select

from middleware.ledger import states
from middleware.ledger.models import Fulfilment
from workers.queues import FULFILMENT_QUEUE

from bench import common, procs, profile, seed
from bench.common import BenchError, table, verdict
from bench.measure import CpuMeter, service_pids
from bench.procs import Emulator
from bench.profile import Profile

TARGET = 0.5
FULL = dict(orders=2000, workers=2, rounds=2, timeout=600)
QUICK = dict(orders=40, workers=2, rounds=1, timeout=90)


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


def run_leg(kind: str, svc, emulator: Emulator, env: dict, workdir: Path, count: int, workers: int,
            timeout: float) -> dict:
    """One measured leg: ``kind`` is "orders" or "noop"."""
    redis = svc.redis
    redis.flushdb()
    if kind == "orders":
        common.clear_ledger(svc.engine)
        emulator.reset()
        job_ids = seed.enqueue_orders(redis, seed.record_received(svc, count))
    else:
        job_ids = seed.enqueue_noops(redis, count)

    def done() -> int:
        return _done_orders(svc) if kind == "orders" else _done_jobs(redis)
    meter = CpuMeter({"emulator": emulator.pids(), **service_pids(env["KB_DATABASE_URL"])}).start()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    log = workdir / f"worker-{kind}.log"
    worker_procs = [procs.spawn([sys.executable, "-m", "workers", "--burst"], env=env, log=log)
                    for _ in range(workers)]
    spy = Profile(worker_procs[0].pid, None, profile.out_path(f"e2e-{kind}")) \
        if kind == "orders" else None
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
    cpu["workers"] = round(((after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)) / elapsed, 2)
    if spy is not None and spy.finish():
        print(f"profile of one worker ({kind}): {spy.out}")
    window, jobs_finished = seed.job_window(redis, job_ids)
    out = {"kind": kind, "count": count, "workers": workers, "jobs_finished": jobs_finished,
           "window_s": round(window, 3), "per_second": round(count / window, 1) if window else None,
           "wall_s": round(wall, 3), "wall_per_second": round(count / wall, 1), "cpu_cores": cpu,
           "cpu_ms_per_job": {k: round(v * elapsed / count * 1000, 3) for k, v in cpu.items()}}
    if kind == "orders":
        with svc.session() as session:
            out["ledger_states"] = dict(session.execute(select(Fulfilment.state, func.count())
                                                        .group_by(Fulfilment.state)).all())
    return out


def run(backends: common.Backends, workdir: Path, quick: bool = False) -> dict:
    opts = QUICK if quick else FULL
    common.reset_ledger(backends.database_url)
    emulator = Emulator(workdir)
    started = time.perf_counter()
    legs: list[dict] = []
    try:
        env, svc = procs.app_services(backends, workdir, emulator)
        try:
            for _ in range(opts["rounds"]):
                for kind in ("noop", "orders"):
                    legs.append(run_leg(kind, svc, emulator, env, workdir, opts["orders"], opts["workers"],
                                        opts["timeout"]))
        finally:
            svc.redis.flushdb()
            svc.close()
    finally:
        emulator.close()
    noop = max((leg for leg in legs if leg["kind"] == "noop"), key=lambda leg: leg["per_second"] or 0)
    orders = max((leg for leg in legs if leg["kind"] == "orders"), key=lambda leg: leg["per_second"] or 0)
    ratio = round(orders["per_second"] / noop["per_second"], 3) if noop["per_second"] and orders["per_second"] else None
    print(f"\nE2E  orders FULFILLED/s through RQ workers vs no-op RQ jobs/s  [{backends.describe()}]")
    print(f"{opts['workers']} x `python -m workers --burst` (SimpleWorker), {opts['orders']} orders / jobs per leg, "
          f"{opts['rounds']} round(s), best of each; rate = jobs / (first job start .. last job end)")
    rows = [[leg["kind"], leg["count"], leg["per_second"], leg["window_s"], leg["wall_s"], leg["wall_per_second"],
             "/".join(f"{leg['cpu_ms_per_job'].get(k, 0):.2f}" for k in ("workers", "emulator", "postgres", "redis")),
             "/".join(f"{leg['cpu_cores'].get(k, 0):.2f}" for k in ("workers", "emulator", "postgres", "redis"))]
            for leg in legs]
    print(table(["leg", "jobs", "per s", "window s", "wall s", "wall per s", "CPU ms/job", "cores busy"], rows))
    print("CPU columns: worker processes (start-up included) / emulator / PostgreSQL / redis-server")
    print(f"orders/s {orders['per_second']}, no-op jobs/s {noop['per_second']}: ratio {ratio} "
          f"(target >= {TARGET}: {verdict(ratio, TARGET)})")
    summary = {"benchmark": "e2e", "quick": quick, "backends": backends.describe(), "workers": opts["workers"],
               "orders": opts["orders"], "orders_per_second": orders["per_second"],
               "noop_jobs_per_second": noop["per_second"], "ratio": ratio, "target_ratio": TARGET,
               "meets_target": ratio is not None and ratio >= TARGET, "legs": legs,
               "elapsed_s": round(time.perf_counter() - started, 1),
               "load_average_after": common.load_average()}
    print(f"wrote {common.save('e2e', summary)}")
    return summary
