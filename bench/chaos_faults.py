"""The chaos run's faults: Kraty's (injected by the emulator) and the processes it kills or restarts.

The fault mix is ``name=value`` pairs, comma-separated:

- Kraty, on every grant and take-back call: ``errors`` (share answered 5xx), ``after`` (share of those answered
  after Kraty applied the change), ``slow`` / ``slow_ms`` (share of calls delayed, by how much), ``drop``
  (share of connections dropped without an answer);
- kills, spread evenly over the run in an order the seed picks: ``worker`` (SIGKILL a random
  ``python -m workers`` and its process group), ``lock_holder`` (the one holding RQ's scheduler lock),
  ``reconciler`` (the worker running the reconciler, caught mid-pass if it can be, else the one that
  enqueued it), ``web`` (a gunicorn worker: gunicorn starts another), ``redis`` (killed, back empty after
  2 s), ``postgres`` (stopped with ``-m immediate``, a crash, back after 3 s). A killed worker is replaced.
"""
from __future__ import annotations

import os
import signal
import sys
import time
from collections import Counter

import psutil
import redis as redis_lib
from rq import Worker

from bench import procs

DEFAULT_MIX = ("errors=0.2,after=0.5,slow=0.1,slow_ms=2000,drop=0.02,"
               "worker=6,lock_holder=2,reconciler=2,web=4,redis=2,postgres=2")
KRATY = ("errors", "after", "slow", "slow_ms", "drop")
KILLS = ("worker", "lock_holder", "reconciler", "web", "redis", "postgres")
GRANT_CALLS = r"/(wallet|inventory)/[^/]+/(credit|debit|grant|revoke)$"


def parse_mix(text: str, error) -> dict:
    mix = dict.fromkeys(KRATY, 0.0) | dict.fromkeys(KILLS, 0)
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, _, value = part.partition("=")
        if name not in mix:
            error(f"--faults: unknown fault {name!r} (known: {', '.join(mix)})")
        try:
            mix[name] = type(mix[name])(value)
        except ValueError:
            error(f"--faults: {name} wants a number, not {value!r}")
        if mix[name] < 0 or (name in KRATY and name != "slow_ms" and mix[name] > 1):
            error(f"--faults: {name}={value} is out of range")
    return mix


def kraty_rules(mix: dict) -> list[dict]:
    """The emulator's fault rules for this mix (emulator/faults.py)."""
    rules = []
    if mix["drop"]:
        rules.append({"path": GRANT_CALLS, "method": "POST", "drop": True, "error_rate": mix["drop"]})
    if mix["errors"]:
        before, after = mix["errors"] * (1 - mix["after"]), mix["errors"] * mix["after"]
        if before:
            rules.append({"path": GRANT_CALLS, "method": "POST", "status": 503, "error_rate": before})
        if after:
            rules.append({"path": GRANT_CALLS, "method": "POST", "status": 500, "phase": "after", "error_rate": after})
    if mix["slow"] and mix["slow_ms"]:
        rules.append({"path": "^/server/", "latency_ms": mix["slow_ms"], "error_rate": mix["slow"]})
    return rules


class Chaos:
    """The run's worker processes and the kills on its schedule."""

    def __init__(self, args, env: dict, workdir, redis_server, pg, web: procs.Gunicorn, rng):
        self.args, self.env, self.workdir, self.rng = args, env, workdir, rng
        self.redis_server, self.pg, self.web = redis_server, pg, web
        self.redis = redis_lib.Redis.from_url(redis_server.url, socket_timeout=5, socket_connect_timeout=2)
        self.workers: list = []
        self.spawned = 0
        self.done: Counter = Counter()
        self.notes: list[str] = []

    def start_worker(self) -> None:
        self.spawned += 1
        self.workers.append(procs.spawn([sys.executable, "-m", "workers"], env=self.env,
                                        log=self.workdir / f"worker-{self.spawned}.log"))

    def start_workers(self) -> None:
        for _ in range(self.args.workers):
            self.start_worker()

    def stop(self) -> None:
        self.redis.close()

    def run_schedule(self, duration: float, finished) -> None:
        plan = [kind for kind in KILLS for _ in range(self.args.mix[kind])]
        self.rng.shuffle(plan)
        # RQ's scheduler dies with Redis (it comes back with the next worker or RQ's 10-minute maintenance
        # pass): kill the lock holders before Redis goes, where the seed put either
        slots = [n for n, kind in enumerate(plan) if kind in ("lock_holder", "redis")]
        ordered = sorted((plan[n] for n in slots), key=lambda kind: kind == "redis")
        for n, kind in zip(slots, ordered):
            plan[n] = kind
        started = time.monotonic()
        for n, kind in enumerate(plan):
            at = started + duration * (n + 1) / (len(plan) + 1)
            while time.monotonic() < at and not finished():
                time.sleep(0.2)
            if finished():
                self.notes.append(f"the orders were all answered before {len(plan) - n} planned kill(s)")
                return
            getattr(self, f"_kill_{kind}")()
            print(f"  {time.monotonic() - started:6.1f} s  {self.notes[-1] if self.notes else kind}", flush=True)

    # --------------------------------------------------------------------------------------------- kills
    def _kill_worker_process(self, proc, kind: str, how: str) -> None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)   # the worker, RQ's scheduler child and any job horse
        except ProcessLookupError:
            pass
        proc.wait(10)
        self.workers.remove(proc)
        procs.stop(proc)   # forget it (already dead)
        self.done[kind] += 1
        self.notes.append(f"{kind}: SIGKILL worker pid {proc.pid} ({how}); a new worker started")
        self.start_worker()

    def _worker_with_pid(self, pid: int):
        for proc in self.workers:
            if pid == proc.pid or pid in procs.process_tree(proc.pid):
                return proc
        return None

    def _kill_worker(self) -> None:
        self._kill_worker_process(self.rng.choice(self.workers), "worker", "a random one")

    def _kill_lock_holder(self) -> None:
        name = self.redis.get("rq:scheduler-lock:kb-fulfilment")
        pid = name and self.redis.hget(f"rq:scheduler:{name.decode()}", "pid")
        proc = pid and self._worker_with_pid(int(pid))
        if not proc:
            self.notes.append("lock_holder: RQ's scheduler lock is free or still held by a killed worker's "
                              "scheduler (it outlives it by 61 s); killed a random worker")
            return self._kill_worker_process(self.rng.choice(self.workers), "worker", "instead of a lock holder")
        self._kill_worker_process(proc, "lock_holder", f"its scheduler {name.decode()} holds the lock")

    def _kill_reconciler(self) -> None:
        deadline = time.monotonic() + self.args.interval + 5
        while time.monotonic() < deadline:   # catch it mid-pass
            for worker in Worker.all(connection=self.redis):
                if (worker.get_current_job_id() or "").startswith("reconcile-"):
                    proc = self._worker_with_pid(worker.pid)
                    if proc:
                        return self._kill_worker_process(proc, "reconciler", "running the reconciler")
            time.sleep(0.05)
        slots = sorted(self.redis.scan_iter("kb:reconcile:*"), key=lambda k: int(k.rsplit(b":", 1)[1]))
        identity = slots and self.redis.get(slots[-1])
        proc = identity and self._worker_with_pid(int(identity.decode().rsplit(":", 1)[1]))
        if proc:
            return self._kill_worker_process(proc, "reconciler", "it elected itself to enqueue the reconciler")
        self.notes.append("reconciler: its runner was not found; killed a random worker")
        self._kill_worker_process(self.rng.choice(self.workers), "worker", "instead of the reconciler")

    def _kill_web(self) -> None:
        pids = self.web.worker_pids()
        if pids:
            pid = self.rng.choice(pids)
            try:
                psutil.Process(pid).send_signal(signal.SIGKILL)
            except psutil.NoSuchProcess:
                pass
            self.done["web"] += 1
            self.notes.append(f"web: SIGKILL gunicorn worker pid {pid}")

    def _kill_redis(self) -> None:
        self.redis_server.kill()
        time.sleep(2)
        self.redis_server.start()
        self.done["redis"] += 1
        self.notes.append("redis: SIGKILL, back empty after 2 s")

    def _kill_postgres(self) -> None:
        self.pg.restart(3, "immediate")
        self.done["postgres"] += 1
        self.notes.append("postgres: stopped -m immediate (a crash), back after 3 s")
