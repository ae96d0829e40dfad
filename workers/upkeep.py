"""What every ``python -m workers`` does beside its jobs: waiting out outages and keeping work moving.

- ``Outages``: one log line when Redis or the database goes away and one when it is back (with how long it
  was gone), not one per failed call or job: RQ's own "could not connect to Redis ... retrying" lines and
  the tracebacks of jobs that failed for want of Redis or the database are folded into it (``OutageLogFilter``).
- ``wait_for_dependencies``: before a worker (re)starts, wait with capped exponential backoff until Redis
  and the database answer.
- ``upkeep``: a thread that, once a second, puts overdue delayed jobs on their queue (``due.py``: no lock,
  so no one process's death holds them up) and, once per interval across all workers, enqueues the
  reconciler (SET NX per time slot; the key holds the electing worker's identity).
"""
from __future__ import annotations

import logging
import threading
import time

from redis import Redis
from redis.exceptions import RedisError
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from workers import due
from workers.queues import QUEUES, RqJobs

log = logging.getLogger("workers")

TICK = 1.0              # seconds between two moves of overdue jobs
DATABASE_CHECK = 5      # ticks between two looks at the database
BACKOFF_START = 0.5     # seconds; doubled per failed check while waiting for a dependency
BACKOFF_MAX = 10.0
RECONCILE_KEY = "kb:reconcile:{slot}"


class Outages:
    """Which dependencies are down, since when; logs each outage's start and end once."""

    def __init__(self):
        self._lock = threading.Lock()
        self._since: dict[str, float] = {}

    def down(self, name: str, exc: BaseException | str) -> None:
        with self._lock:
            if name in self._since:
                return
            self._since[name] = time.monotonic()
        what = exc if isinstance(exc, str) else f"{exc.__class__.__name__}: {exc}"
        log.warning("%s unavailable (%s): waiting for it, retrying with backoff", name, what)

    def up(self, name: str) -> None:
        with self._lock:
            since = self._since.pop(name, None)
        if since is not None:
            log.warning("%s available again after %.1f s", name, time.monotonic() - since)

    def is_down(self, name: str) -> bool:
        return name in self._since


class OutageLogFilter(logging.Filter):
    """RQ logs every reconnect attempt, and every job that failed because Redis or the database was gone with
    its traceback; during an outage these become its one ``Outages`` line (the reconciler settles the jobs)."""

    JOB_FAILED = "Worker %s: job %s: exception raised while executing"
    CAUSES = {"the database": ("sqlalchemy.exc.OperationalError", "sqlalchemy.exc.InterfaceError"),
              "Redis": ("redis.exceptions.ConnectionError", "redis.exceptions.TimeoutError")}

    def __init__(self, outages: Outages):
        super().__init__()
        self.outages = outages

    def filter(self, record: logging.LogRecord) -> bool:
        message, args = str(record.msg), record.args if isinstance(record.args, tuple) else ()
        if message.startswith("Worker %s: could not connect to Redis"):
            self.outages.down("Redis", str(args[1]) if len(args) > 1 else "connection error")
            return False
        if message.startswith(self.JOB_FAILED) and len(args) > 3:
            for name, exceptions in self.CAUSES.items():
                cause = next((e for e in exceptions if e in str(args[3])), None)
                if cause:
                    self.outages.down(name, f"{cause.rsplit('.', 1)[-1]} in job {args[1]}")
                    return False
        return True


def redis_answers(redis: Redis, outages: Outages) -> bool:
    try:
        redis.ping()
    except (RedisError, OSError) as exc:
        outages.down("Redis", exc)
        return False
    outages.up("Redis")
    return True


def database_answers(engine: Engine, outages: Outages) -> bool:
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except SQLAlchemyError as exc:
        outages.down("the database", exc.__class__.__name__)
        return False
    outages.up("the database")
    return True


def wait_for_dependencies(redis: Redis, engine: Engine, outages: Outages, stop: threading.Event) -> bool:
    """Block until Redis and the database both answer (True), or ``stop`` is set (False)."""
    delay = BACKOFF_START
    while not stop.is_set():
        if redis_answers(redis, outages) and database_answers(engine, outages):
            return True
        stop.wait(delay)
        delay = min(delay * 2, BACKOFF_MAX)
    return False


def upkeep(jobs: RqJobs, redis: Redis, engine: Engine, identity: str, interval: float, reconcile: bool,
           outages: Outages, stop: threading.Event) -> None:
    """The worker's upkeep thread (see the module's docstring); survives any outage. It also looks at the
    database every DATABASE_CHECK seconds, so an outage is logged (once) even when no job meets it. ``jobs``:
    the app's ``svc.jobs``, which enqueues the reconciler."""
    last_slot, ticks = None, 0
    while not stop.wait(TICK):
        ticks += 1
        if ticks % DATABASE_CHECK == 0 or outages.is_down("the database"):
            database_answers(engine, outages)
        try:
            due.move_overdue(redis, QUEUES)
            slot = int(time.time() // interval)
            if reconcile and slot != last_slot:
                if redis.set(RECONCILE_KEY.format(slot=slot), identity, nx=True, ex=int(interval * 2) + 1):
                    jobs.reconcile(slot)
                last_slot = slot
        except (RedisError, OSError) as exc:
            outages.down("Redis", exc)
            continue
        outages.up("Redis")
