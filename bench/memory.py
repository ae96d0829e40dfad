"""Memory: RSS of one web worker (gunicorn's worker child, not the master) and of one RQ worker
(``python -m workers``) over 10,000 orders each.

Targets: peak RSS under 120 MB, and under 10 % growth between the 5,000th and the 10,000th order.
RSS is read (psutil) when the process is idle right after the 5,000th and the 10,000th order; the
peak is the larger of a 50 ms background sampler and the kernel's high-water mark (VmHWM).
"""
from __future__ import annotations

import time
import uuid
from pathlib import Path

import psutil
from rq import Queue
from sqlalchemy import func, select

from middleware.ledger import states
from middleware.ledger.models import Fulfilment
from workers.queues import FULFILMENT_QUEUE

from bench import common, procs, runtime_env, seed
from bench.common import BenchError, table
from bench.loadgen import run_python
from bench.measure import RssSampler, peak_rss_mb, rss_mb
from bench.procs import Emulator, Gunicorn

PEAK_LIMIT_MB = 120.0
GROWTH_LIMIT = 0.10
FULL = dict(orders=10_000, connections=4, worker_class="gthread", threads=4, timeout=900)
QUICK = dict(orders=100, connections=2, worker_class="gthread", threads=4, timeout=120)


def _fulfilled(svc) -> int:
    with svc.session() as session:
        return session.scalar(select(func.count()).select_from(Fulfilment)
                              .where(Fulfilment.state == states.FULFILLED))


def _verdict(leg: dict) -> dict:
    leg["growth"] = round((leg["rss_at_end_mb"] - leg["rss_at_half_mb"]) / leg["rss_at_half_mb"], 4)
    leg["meets_peak"] = leg["peak_mb"] < PEAK_LIMIT_MB
    leg["meets_growth"] = leg["growth"] < GROWTH_LIMIT
    return leg


def web_leg(svc, emulator: Emulator, env: dict, workdir: Path, opts: dict) -> dict:
    common.clear_ledger(svc.engine)
    emulator.reset()
    server = Gunicorn("app:create_app()", 1, opts["worker_class"], opts["threads"], env, workdir / "gunicorn-mem.log",
                      ready_path="/healthz", python=opts["python"])
    try:
        pid = server.worker_pids()[0]
        sampler = RssSampler(pid)
        sampler.start()
        half = opts["orders"] // 2
        prefix = f"mem-{uuid.uuid4().hex[:8]}"
        t0 = time.perf_counter()
        first = run_python(server.url, prefix + "-a", opts["connections"], total=half, processes=1)
        at_half = rss_mb(pid)
        second = run_python(server.url, prefix + "-b", opts["connections"], total=half, processes=1)
        at_end = rss_mb(pid)
        seconds = time.perf_counter() - t0
        peak = max(sampler.finish(), peak_rss_mb(pid) or 0.0, at_half, at_end)
        if server.worker_pids() != [pid]:
            raise BenchError("memory: the gunicorn worker was replaced during the run")
    finally:
        server.close()
    fulfilled = _fulfilled(svc)
    return _verdict({"leg": f"web worker (gunicorn {opts['worker_class']} w=1 t={opts['threads']})",
                     "orders": first.requests + second.requests, "errors": first.errors + second.errors,
                     "fulfilled": fulfilled, "seconds": round(seconds, 1), "rss_at_half_mb": round(at_half, 1),
                     "rss_at_end_mb": round(at_end, 1), "peak_mb": round(peak, 1)})


def _feed_worker(svc, count: int, target: int, proc, timeout: float) -> None:
    seed.enqueue_orders(svc, seed.record_received(svc, count))
    deadline = time.monotonic() + timeout
    queue = Queue(FULFILMENT_QUEUE, connection=svc.redis)
    while _fulfilled(svc) < target or queue.count:
        if proc.poll() is not None:
            raise BenchError(f"memory: the RQ worker exited ({proc.returncode})")
        if time.monotonic() > deadline:
            raise BenchError(f"memory: {_fulfilled(svc)} of {target} orders fulfilled after {timeout:.0f} s")
        time.sleep(0.1)


def rq_leg(svc, emulator: Emulator, env: dict, workdir: Path, opts: dict) -> dict:
    common.clear_ledger(svc.engine)
    svc.redis.flushdb()
    emulator.reset()
    proc = procs.spawn([opts["python"], "-m", "workers"], env=env, log=workdir / "worker-mem.log")
    try:
        procs.wait_until(lambda: _registered(svc), 30, "the RQ worker to register", proc)
        sampler = RssSampler(proc.pid)
        sampler.start()
        half = opts["orders"] // 2
        t0 = time.perf_counter()
        _feed_worker(svc, half, half, proc, opts["timeout"])
        at_half = rss_mb(proc.pid)
        _feed_worker(svc, half, 2 * half, proc, opts["timeout"])
        at_end = rss_mb(proc.pid)
        seconds = time.perf_counter() - t0
        peak = max(sampler.finish(), peak_rss_mb(proc.pid) or 0.0, at_half, at_end)
        children = [round(rss_mb(c.pid), 1) for c in psutil.Process(proc.pid).children(recursive=True)]
    finally:
        procs.stop(proc, timeout=20)
    return _verdict({"leg": "RQ worker (python -m workers, SimpleWorker)", "orders": 2 * half, "errors": 0,
                     "fulfilled": _fulfilled(svc), "seconds": round(seconds, 1), "rss_at_half_mb": round(at_half, 1),
                     "rss_at_end_mb": round(at_end, 1), "peak_mb": round(peak, 1),
                     "child_processes_rss_mb": children})


def _registered(svc) -> bool:
    from rq import Worker
    return bool(Worker.all(connection=svc.redis))


def run(backends: common.Backends, workdir: Path, quick: bool = False) -> dict:
    python, measured_in = runtime_env.python(quick)
    opts = {**(QUICK if quick else FULL), "python": python}
    common.reset_ledger(backends.database_url)
    emulator = Emulator(workdir)
    started = time.perf_counter()
    try:
        env, svc = procs.app_services(backends, workdir, emulator)
        try:
            legs = [web_leg(svc, emulator, env, workdir, opts), rq_leg(svc, emulator, env, workdir, opts)]
        finally:
            svc.redis.flushdb()
            svc.close()
    finally:
        emulator.close()
    half = opts["orders"] // 2
    print(f"\nMEMORY  RSS of one worker process over {opts['orders']:,} orders  [{backends.describe()}]")
    print(f"processes started from: {measured_in}")
    print(table(["process", "orders", "FULFILLED", "s", f"RSS @{half:,} MB", f"RSS @{2 * half:,} MB", "growth",
                 "peak MB", "verdict"],
                [[leg["leg"], leg["orders"], leg["fulfilled"], leg["seconds"], leg["rss_at_half_mb"],
                  leg["rss_at_end_mb"], f"{leg['growth'] * 100:+.1f}%", leg["peak_mb"],
                  "meets targets" if leg["meets_peak"] and leg["meets_growth"] else "MISSES target"]
                 for leg in legs]))
    print(f"targets: peak < {PEAK_LIMIT_MB:.0f} MB, growth from order {half:,} to {2 * half:,} < "
          f"{GROWTH_LIMIT * 100:.0f}%")
    summary = {"benchmark": "memory", "quick": quick, "backends": backends.describe(), "orders": opts["orders"],
               "environment": measured_in,
               "peak_limit_mb": PEAK_LIMIT_MB, "growth_limit": GROWTH_LIMIT, "legs": legs,
               "meets_target": all(leg["meets_peak"] and leg["meets_growth"] for leg in legs),
               "elapsed_s": round(time.perf_counter() - started, 1),
               "load_average_after": common.load_average()}
    print(f"wrote {common.save('memory', summary)}")
    return summary
