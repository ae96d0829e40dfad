"""What every ``python -m workers`` does beside its jobs: waiting out outages and keeping work moving.

- ``Outages``: one log line when Redis or the database goes away and one when it is back (with how long it
  was gone), not one per failed call; RQ's own "could not connect to Redis ... retrying" lines, one per
  retry, are folded into it (``QuietReconnects``).
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

from . import due
from .queues import QUEUES, enqueue_reconcile

log = logging.getLogger("workers")

TICK = 1.0              # seconds between two moves of overdue jobs
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


class QuietReconnects(logging.Filter):
    """RQ logs every reconnect attempt; turn them into the one ``Outages`` line."""

    def __init__(self, outages: Outages):
        super().__init__()
        self.outages = outages

    def filter(self, record: logging.LogRecord) -> bool:
        if str(record.msg).startswith("Worker %s: could not connect to Redis"):
            self.outages.down("Redis", str(record.args[1]) if len(record.args or ()) > 1 else "connection error")
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


def upkeep(redis: Redis, identity: str, interval: float, reconcile: bool, outages: Outages,
           stop: threading.Event) -> None:
    """The worker's upkeep thread (see the module's docstring); survives any Redis outage."""
    last_slot = None
    while not stop.wait(TICK):
        try:
            due.move_overdue(redis, QUEUES)
            slot = int(time.time() // interval)
            if reconcile and slot != last_slot:
                if redis.set(RECONCILE_KEY.format(slot=slot), identity, nx=True, ex=int(interval * 2) + 1):
                    enqueue_reconcile(redis, slot)
                last_slot = slot
        except (RedisError, OSError) as exc:
            outages.down("Redis", exc)
            continue
        outages.up("Redis")
