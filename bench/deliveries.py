"""Sink deliveries: deliveries per second from recorded outbound events to a local sink through RQ workers
vs raw no-op RQ jobs per second, same Redis, same worker command (``python -m workers --burst``, rq's
SimpleWorker), same worker count, in the same run. Target: at least half the no-op job rate.

A deliveries leg records ``events`` new ``purchase.fulfilled`` events (~0.5 KB envelopes, 1000 players, so
per-player sequence numbers) with ``middleware.sinks.outbound_events.emit``, as the app records them, for one
``http`` sink, and enqueues their first attempts (``workers.deliver.deliver`` on queue ``kb-sinks``) as the
app does after its commit; then starts the workers. Each job reads its delivery, checks the sink, takes the
sink's rate limit in Redis (a limit far above the rate reached, so the check runs and never throttles),
claims the attempt, POSTs the signed envelope and records it ``delivered``. The sink is
``bench/sink_receiver.py`` in its own process: an asyncio HTTP/1.1 server that verifies every signature
with the ``standardwebhooks`` library, answers 200 and counts what it got per ``webhook-id``. A no-op leg
enqueues as many ``bench.noop.noop`` jobs on the same queue with the same job options. Legs alternate
(no-op, deliveries) for ``rounds`` rounds; the best of each side is compared.

Rates come from RQ's own job timestamps (first job start to last job end), so worker start-up is left out
of both; the wall time from spawning the workers to the last job done and the receiver's own rate (first to
last arrival) are shown too.

Correctness, per deliveries leg: every job finished; every delivery ``delivered`` in the ledger; the
receiver got every event, each with a valid signature, and nothing else; duplicates (the same webhook-id
received twice: at least once allows them) are counted and shown. Per no-op leg: every job finished.
"""
from __future__ import annotations

import base64
import sys
import time
import uuid
from datetime import timedelta
from pathlib import Path

import requests
from rq import Queue
from sqlalchemy import func, select

from middleware.ledger.models import Delivery, utcnow
from middleware.sinks.outbound_events import emit
from workers.queues import SINK_QUEUE

from bench import common, procs, profile, seed
from bench.common import ROOT, BenchError, table, verdict
from bench.measure import CpuMeter, service_pids
from bench.profile import Profile

TARGET = 0.5
FULL = {"events": 2000, "workers": 2, "rounds": 2, "timeout": 600}
QUICK = {"events": 40, "workers": 2, "rounds": 1, "timeout": 90}
SINK = "bench_crm"
SECRET = "whsec_" + base64.b64encode(b"kraty-bridge-bench-sink-secret-000001").decode()
RATE_LIMIT = 100_000   # per second: the limit is checked on every delivery, never reached
RESULT_TTL = 600       # the job options of a delivery (workers/queues.py RqJobs.delivery)
BATCH = 500
COMPONENTS = ("workers", "receiver", "postgres", "redis")


# ------------------------------------------------------------------------------------------------ the sink
class SinkReceiver:
    """``bench/sink_receiver.py`` in its own process on a free loopback port."""

    def __init__(self, workdir: Path):
        self.port = procs.free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = procs.spawn([sys.executable, "-m", "bench.sink_receiver", "--secret", SECRET,
                                 "--port", str(self.port)], log=workdir / "sink-receiver.log")
        procs.wait_http(self.url + "/_stats", proc=self.proc)
        self.session = requests.Session()

    def reset(self) -> None:
        self.session.post(self.url + "/_reset", timeout=10).raise_for_status()

    def stats(self) -> dict:
        return self.session.get(self.url + "/_stats", timeout=10).json()

    def ids(self) -> dict[str, int]:
        return self.session.get(self.url + "/_ids", timeout=30).json()["ids"]

    def close(self) -> None:
        procs.stop(self.proc)


def write_sinks(workdir: Path, receiver_url: str) -> str:
    path = workdir / "sinks.toml"
    path.write_text(f"""[sinks.{SINK}]
type = "http"
url = "{receiver_url}/hooks/kraty"
secret = "{SECRET}"
headers = {{ "X-Studio" = "demo" }}
events = ["purchase.*", "wallet.changed"]
environments = ["production"]
rate_limit = {RATE_LIMIT}
rate_window = 1
timeout = 15
""")
    return str(path)


# ------------------------------------------------------------------------------------------------ seeding
def _payload(n: int, tag: str, player: str) -> dict:
    """A purchase.fulfilled payload as ``middleware/orders/purchase_events.py`` builds it."""
    return {"fulfilmentId": uuid.uuid4().hex, "store": "stripe", "environment": "production",
            "transactionId": f"cs_live_a1{tag}{n:08d}", "playerId": player, "state": "FULFILLED", "reason": None,
            "products": [{"sku": "gems_100", "itemId": "gems_100", "quantity": 2},
                         {"sku": "starter_pack", "itemId": "starter_pack", "quantity": 1}],
            "price": 1998, "currency": "USD"}


def record_events(svc, count: int, users: int = 1000) -> list[str]:
    """``count`` new purchase.fulfilled events for the sink, recorded as the app records them, and their
    first delivery attempts enqueued; the jobs' ids."""
    tag, job_ids = uuid.uuid4().hex[:8], []
    for start in range(0, count, BATCH):
        occurred = utcnow() - timedelta(seconds=1)
        ids: list[str] = []
        with svc.session() as session:
            for n in range(start, min(count, start + BATCH)):
                player = f"player-{n % users}"
                ids += emit(session, "purchase.fulfilled", "demo", player, "production", occurred,
                            _payload(n, tag, player), sinks=svc.sinks)
            session.commit()
        for delivery_id in ids:
            job_id = svc.jobs.delivery(delivery_id, 1)
            if job_id is None:
                raise BenchError(f"delivery {delivery_id}: its job was already waiting")
            job_ids.append(job_id)
    if len(job_ids) != count:
        raise BenchError(f"{count} events recorded {len(job_ids)} deliveries: is the sink {SINK} configured?")
    return job_ids


def _states(svc) -> dict[str, int]:
    with svc.session() as session:
        return dict(session.execute(select(Delivery.state, func.count()).group_by(Delivery.state)).all())


def _attempts(svc) -> dict[int, int]:
    with svc.session() as session:
        return dict(session.execute(select(Delivery.attempts, func.count()).group_by(Delivery.attempts)).all())


def _event_ids(svc) -> set[str]:
    with svc.session() as session:
        return set(session.scalars(select(Delivery.event_id)))


# ------------------------------------------------------------------------------------------------ legs
def run_leg(kind: str, svc, receiver: SinkReceiver, env: dict, workdir: Path, count: int, workers: int,
            timeout: float, round_no: int) -> dict:
    """One measured leg: ``kind`` is "deliveries" or "noop"."""
    redis = svc.redis
    redis.flushdb()
    if kind == "deliveries":
        common.clear_ledger(svc.engine)
        receiver.reset()
        job_ids = record_events(svc, count)
    else:
        job_ids = seed.enqueue_noops(redis, count, queue=SINK_QUEUE, result_ttl=RESULT_TTL)
    finished_registry = Queue(SINK_QUEUE, connection=redis).finished_job_registry

    worker_procs: list = []
    meter = CpuMeter({"workers": lambda: [pid for p in worker_procs for pid in procs.process_tree(p.pid)],
                      "receiver": [receiver.proc.pid], **service_pids(env["KB_DATABASE_URL"])}).start()
    t0 = time.perf_counter()
    log = workdir / f"worker-{kind}.log"
    worker_procs += [procs.spawn([sys.executable, "-m", "workers", "--burst"], env=env, log=log)
                     for _ in range(workers)]
    spy = Profile(worker_procs[0].pid, None, profile.out_path("deliveries-worker")) \
        if kind == "deliveries" and round_no == 0 else None
    while finished_registry.count < count:
        if time.perf_counter() - t0 > timeout:
            raise BenchError(f"deliveries {kind}: only {finished_registry.count} of {count} jobs done after "
                             f"{timeout:.0f} s")
        if all(p.poll() is not None for p in worker_procs):
            break  # burst workers found the queue empty: what is missing shows in the checks
        time.sleep(0.05)
    wall = time.perf_counter() - t0
    for p in worker_procs:
        try:
            p.wait(60)
        finally:
            procs.stop(p)
    cpu = meter.stop()
    elapsed = time.perf_counter() - t0
    if spy is not None and spy.finish():
        print(f"profile of one worker ({kind}): {spy.out}")
    window, jobs_finished = seed.job_window(redis, job_ids)
    out = {"kind": kind, "round": round_no + 1, "count": count, "workers": workers, "jobs_finished": jobs_finished,
           "window_s": round(window, 3), "per_second": round(count / window, 1) if window else None,
           "wall_s": round(wall, 3), "wall_per_second": round(count / wall, 1), "cpu_cores": cpu,
           "cpu_ms_per_job": {k: round(v * elapsed / count * 1000, 3) for k, v in cpu.items()}}
    problems = []
    if jobs_finished != count:
        problems.append(f"{jobs_finished} of {count} jobs finished")
    if kind == "deliveries":
        states, attempts, got = _states(svc), _attempts(svc), receiver.stats()
        ids, expected = receiver.ids(), _event_ids(svc)
        stats = {k: got[k] for k in ("received", "verified", "rejected", "distinct", "duplicates")}
        span = (got["last_at"] or 0) - (got["first_at"] or 0)
        stats["per_second"] = round((got["verified"] - 1) / span, 1) if span > 0 else None
        out.update(ledger_states=states, attempts=attempts, receiver=stats)
        if states != {"delivered": count}:
            problems.append(f"ledger states {states}, expected {{'delivered': {count}}}")
        missing, unexpected = expected - ids.keys(), ids.keys() - expected
        if missing or unexpected or len(expected) != count:
            problems.append(f"the receiver missed {len(missing)} of {len(expected)} events and got {len(unexpected)} "
                            "it should not have")
        if got["rejected"]:
            problems.append(f"the receiver rejected {got['rejected']} signatures")
        # at least once: a duplicate is allowed (and shown), never a loss
    out["correctness"] = {"ok": not problems, "problems": problems}
    return out


# ------------------------------------------------------------------------------------------------ run
def run(backends: common.Backends, workdir: Path, quick: bool = False) -> dict:
    from app import create_app
    opts = QUICK if quick else FULL
    common.reset_ledger(backends.database_url)
    receiver = SinkReceiver(workdir)
    started = time.perf_counter()
    legs: list[dict] = []
    try:
        catalog, sinks = str(ROOT / "config" / "examples" / "catalog.toml"), write_sinks(workdir, receiver.url)
        env = common.kb_env(backends, catalog, KB_SINKS=sinks)
        app = create_app({"database_url": backends.database_url, "redis_url": backends.redis_url,
                          "catalog_path": catalog, "sinks_path": sinks, "log_level": "WARNING"})
        svc = app.extensions["kraty_bridge"]
        try:
            for n in range(opts["rounds"]):
                for kind in ("noop", "deliveries"):
                    legs.append(run_leg(kind, svc, receiver, env, workdir, opts["events"], opts["workers"],
                                        opts["timeout"], n))
        finally:
            svc.redis.flushdb()
            common.clear_ledger(svc.engine)
            svc.close()
    finally:
        receiver.close()
    return report(backends, opts, quick, legs, started)


def report(backends: common.Backends, opts: dict, quick: bool, legs: list[dict], started: float) -> dict:
    def best(kind: str) -> dict:
        return max((leg for leg in legs if leg["kind"] == kind), key=lambda leg: leg["per_second"] or 0)
    noop, deliveries = best("noop"), best("deliveries")
    ratio = round(deliveries["per_second"] / noop["per_second"], 3) \
        if noop["per_second"] and deliveries["per_second"] else None
    correct = all(leg["correctness"]["ok"] for leg in legs)
    duplicates = sum(leg["receiver"]["duplicates"] for leg in legs if leg["kind"] == "deliveries")
    print(f"\nDELIVERIES  deliveries/s to a local sink through RQ workers vs no-op RQ jobs/s  [{backends.describe()}]")
    print(f"{opts['workers']} x `python -m workers --burst` (SimpleWorker) on queue {SINK_QUEUE}, {opts['events']} "
          f"purchase.fulfilled events (one http sink, rate limit {RATE_LIMIT:,}/s checked on each) / no-op jobs per "
          f"leg, {opts['rounds']} round(s) alternating, best of each; rate = jobs / (first job start .. last job end); "
          "sink: bench/sink_receiver.py (own process, asyncio HTTP/1.1, verifies each signature)")
    rows = [[leg["kind"], leg["round"], leg["count"], leg["per_second"], leg["window_s"], leg["wall_s"],
             leg["wall_per_second"],
             leg["receiver"]["per_second"] if "receiver" in leg else None,
             "/".join(f"{leg['cpu_ms_per_job'].get(k) or 0:.2f}" for k in COMPONENTS),
             "/".join(f"{leg['cpu_cores'].get(k) or 0:.2f}" for k in COMPONENTS),
             "ok" if leg["correctness"]["ok"] else "FAILED"] for leg in legs]
    print(table(["leg", "round", "jobs", "per s", "window s", "wall s", "wall per s", "receiver per s",
                 "CPU ms/job", "cores busy", "check"], rows))
    print("CPU columns: worker processes (start-up included) / sink receiver / PostgreSQL / redis-server")
    for leg in legs:
        if leg["kind"] == "deliveries":
            r = leg["receiver"]
            print(f"check round {leg['round']}: {leg['jobs_finished']} of {leg['count']} jobs finished, ledger "
                  f"{leg['ledger_states']} (attempts {leg['attempts']}); receiver: {r['received']} received, "
                  f"{r['verified']} verified, {r['rejected']} rejected, {r['distinct']} distinct events, "
                  f"{r['duplicates']} duplicates" + ("" if leg["correctness"]["ok"]
                                                     else f"; PROBLEMS: {leg['correctness']['problems']}"))
        elif not leg["correctness"]["ok"]:
            print(f"check no-op round {leg['round']}: PROBLEMS: {leg['correctness']['problems']}")
    print(f"deliveries/s {deliveries['per_second']}, no-op jobs/s {noop['per_second']}: ratio {ratio} "
          f"(target >= {TARGET}: {verdict(ratio, TARGET)}); duplicates at the receiver: {duplicates}")
    summary = {"benchmark": "deliveries", "quick": quick, "backends": backends.describe(), "workers": opts["workers"],
               "events": opts["events"], "rate_limit_per_s": RATE_LIMIT,
               "deliveries_per_second": deliveries["per_second"], "noop_jobs_per_second": noop["per_second"],
               "ratio": ratio, "target_ratio": TARGET, "meets_target": ratio is not None and ratio >= TARGET,
               "correct": correct, "duplicates": duplicates, "legs": legs,
               "elapsed_s": round(time.perf_counter() - started, 1), "load_average_after": common.load_average()}
    print(f"wrote {common.save('deliveries', summary)}")
    if not correct:
        raise BenchError("the delivery check failed: " + "; ".join(
            p for leg in legs for p in leg["correctness"]["problems"]))
    return summary
