"""The outbox relay: moves the jobs the ingest committed with its events (table ``outbox``) to RQ.

Each ``python -m workers`` runs it in a thread; ``python -m workers.relay`` runs it alone (a process of its
own, e.g. beside a web tier). On PostgreSQL it LISTENs on ``kb_outbox`` on a connection of its own, so an
event's job is on the queue moments after its commit (an ingest process NOTIFYs at most every ``NOTIFY_EVERY``
seconds, and a woken relay drains every ``COALESCE`` seconds for ``LINGER`` seconds after its last rows); it also drains the outbox every ``POLL`` seconds
without a notification (a missed one; behind PgBouncer in transaction mode, where LISTEN does not work), and
on SQLite every ``SQLITE_POLL`` seconds. Several relays may run: each takes rows the others have not locked.
The reconciler drains the outbox too, once per pass. An outage of Redis or the database only delays the
rows: nothing is deleted before its job is enqueued, and the loop waits and starts again.
"""
from __future__ import annotations

import logging
import signal
import threading
import time

import psycopg
from redis import Redis
from redis.exceptions import RedisError
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from app import create_app
from middleware.ledger.repository import NOTIFY_EVERY, OUTBOX_CHANNEL
from middleware.services import services

from workers.queues import relay_outbox
from workers.upkeep import BACKOFF_MAX, BACKOFF_START, Outages

log = logging.getLogger(__name__)

POLL = 1.0          # seconds between two drains without a notification (PostgreSQL)
SQLITE_POLL = 0.2   # seconds between two drains on SQLite (no notifications)
COALESCE = NOTIFY_EVERY  # seconds a notified relay waits before it drains: one batch for the events of 50 ms
LINGER = 0.5        # seconds a woken relay keeps draining every COALESCE: an ingest process NOTIFYs at most once
                    # per NOTIFY_EVERY, so the rows it commits in between come without a notification of their own


def _listen_dsn(engine: Engine) -> str:
    return engine.url.set(drivername="postgresql").render_as_string(hide_password=False)


def _listen_loop(engine: Engine, redis: Redis, stop: threading.Event, outages: Outages) -> None:
    with psycopg.connect(_listen_dsn(engine), autocommit=True, connect_timeout=5) as connection:
        connection.execute(f"LISTEN {OUTBOX_CHANNEL}")
        busy = float("-inf")   # when the relay was last woken or last found rows
        while not stop.is_set():
            if relay_outbox(engine, redis):
                busy = time.monotonic()
            outages.up("Redis")
            if time.monotonic() - busy < LINGER:
                for _ in connection.notifies(timeout=0):  # already answered by the drain that follows
                    pass
                stop.wait(COALESCE)
                continue
            for _ in connection.notifies(timeout=POLL, stop_after=1):
                busy = time.monotonic()
                stop.wait(COALESCE)   # woken: let the commits of the next few ms join this batch


def run(engine: Engine, redis: Redis, stop: threading.Event, outages: Outages | None = None) -> None:
    """Relay until ``stop`` is set; any outage is logged once (``outages``) and waited out with backoff."""
    outages = outages or Outages()
    delay = BACKOFF_START
    while not stop.is_set():
        began = time.monotonic()
        try:
            if engine.dialect.name == "postgresql":
                _listen_loop(engine, redis, stop, outages)
            else:
                while not stop.is_set():
                    relay_outbox(engine, redis)
                    outages.up("Redis")
                    stop.wait(SQLITE_POLL)
        except (RedisError, OSError) as exc:
            outages.down("Redis", exc)
        except (SQLAlchemyError, psycopg.Error) as exc:
            outages.down("the database", exc.__class__.__name__)
        else:
            return
        if time.monotonic() - began > BACKOFF_MAX:   # it had been relaying: a new outage starts the backoff over
            delay = BACKOFF_START
        stop.wait(delay)
        delay = min(delay * 2, BACKOFF_MAX)


def start(engine: Engine, redis: Redis, stop: threading.Event, outages: Outages | None = None) -> threading.Thread:
    thread = threading.Thread(target=run, name="outbox-relay", daemon=True, args=(engine, redis, stop, outages))
    thread.start()
    return thread


def main() -> None:
    """``python -m workers.relay``: only the relay, until SIGTERM / SIGINT."""
    app = create_app()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    with app.app_context():
        svc = services()
        run(svc.engine, svc.redis, stop)


if __name__ == "__main__":
    main()
