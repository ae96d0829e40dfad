"""The worker entry point: ``python -m workers [--burst] [--fork]``.

Runs an RQ worker on kraty-bridge's queues with RQ's scheduler, inside the app, the outbox relay (``relay.py``:
the jobs the ingest committed with its events, to RQ) and an upkeep thread (``upkeep.py``) that puts overdue delayed jobs on their queue and enqueues the reconciler once per interval
across all workers. It outlives outages: started while Redis or the database is down it waits for both; an
RQ worker that quits because Redis went away (RQ's own loop gives up on a timeout or an error outside its
dequeue) is replaced by a new one once Redis answers again, each outage logged once. A job that failed
because the database was gone is settled later by the lease and the reconciler, like a killed worker's.
"""
from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading

from redis.exceptions import RedisError

from app import create_app
from config.catalog_schema import ConfigFileError
from config.settings import SettingsError
from middleware.redis_client import RedisClusterNotSupported, refuse_cluster
from middleware.services import services

from workers import relay, runtime
from workers.queues import QUEUES, queue, relay_outbox
from workers.traced import TracedSimpleWorker, TracedWorker
from workers.upkeep import BACKOFF_MAX, Outages, OutageLogFilter, redis_answers, upkeep, wait_for_dependencies

log = logging.getLogger("workers")


def run_workers(svc, args, outages: Outages, stop: threading.Event) -> None:
    """RQ workers one after another until a stop is asked (SIGTERM/SIGINT) or, in burst mode, the queues
    are empty; a worker lost to a Redis outage is replaced once Redis and the database answer."""
    worker_class = TracedWorker if args.fork else TracedSimpleWorker
    while wait_for_dependencies(svc.redis, svc.engine, outages, stop):
        worker = None
        try:
            worker = worker_class([queue(svc.redis, name) for name in QUEUES], connection=svc.redis)
            worker.max_connection_wait_time = BACKOFF_MAX  # RQ's reconnect backoff, capped at 10 s (not 60)
            worker.work(with_scheduler=True, burst=args.burst, logging_level=svc.settings.log_level)
        except (RedisError, OSError) as exc:  # at its start (registering) or its end (teardown)
            outages.down("Redis", exc)
        if worker is not None and worker._shutdown_requested_date is not None:  # RQ's SIGTERM/SIGINT handler ran
            return
        if redis_answers(svc.redis, outages) and args.burst:
            return
        # SIGTERM between two workers: RQ's own handler is gone with the worker
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        signal.signal(signal.SIGINT, lambda *_: stop.set())
        stop.wait(1.0)   # whatever made it quit, never a tight loop of new workers


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m workers", description=__doc__.splitlines()[0])
    parser.add_argument("--burst", action="store_true", help="exit when the queues are empty")
    parser.add_argument("--fork", action="store_true",
                        help="fork a child per job (RQ's default Worker) instead of running jobs in-process")
    parser.add_argument("--no-reconcile", action="store_true", help="do not enqueue the reconciler")
    args = parser.parse_args(argv)

    try:
        app = create_app()
    except (ConfigFileError, SettingsError) as exc:  # a bad setting or file: say which, no traceback
        sys.exit(f"python -m workers: {exc}")
    runtime.use(app)
    outages = Outages()
    logging.getLogger("rq.worker").addFilter(OutageLogFilter(outages))
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with app.app_context():
        svc = services()
        try:
            refuse_cluster(svc.redis)
        except RedisClusterNotSupported as exc:
            sys.exit(f"python -m workers: KB_REDIS_URL: {exc}")
        except RedisError:
            pass  # unreachable now: run_workers waits for it
        if not args.burst:
            threading.Thread(target=upkeep, name="upkeep", daemon=True,
                             args=(svc.jobs, svc.redis, svc.engine, svc.identity, svc.settings.reconcile_interval_seconds,
                                   not args.no_reconcile, outages, stop)).start()
            relay.start(svc.engine, svc.redis, stop, outages)   # the outbox's jobs to RQ (workers/relay.py)
        elif wait_for_dependencies(svc.redis, svc.engine, outages, stop):
            relay_outbox(svc.engine, svc.redis)   # burst: what the outbox holds now, then the queues
        try:
            run_workers(svc, args, outages, stop)
        finally:
            stop.set()


if __name__ == "__main__":
    main()
