"""The worker entry point: ``python -m workers [--burst] [--fork]``.

Runs an RQ worker on kraty-bridge's queues with the scheduler (for delayed retries), inside the
app, and a timer that enqueues the reconciler once per interval across all workers.
"""
from __future__ import annotations

import argparse
import sys
import logging
import threading
import time

from redis.exceptions import RedisError

from app import create_app
from config.catalog_schema import ConfigFileError
from config.settings import SettingsError
from middleware.redis_client import RedisClusterNotSupported, refuse_cluster
from middleware.services import services

from . import runtime
from .queues import QUEUES, enqueue_reconcile, queue
from .traced import TracedSimpleWorker, TracedWorker

log = logging.getLogger("workers")


def reconcile_timer(redis, interval: float, stop: threading.Event) -> None:
    """Once per interval, across every worker: SET NX elects who enqueues the reconciler."""
    while not stop.wait(min(interval, 5.0)):
        slot = int(time.time() // interval)
        try:
            if redis.set(f"kb:reconcile:{slot}", "1", nx=True, ex=int(interval * 2) + 1):
                enqueue_reconcile(redis, slot)
        except RedisError as exc:
            log.warning("reconcile timer: Redis unavailable (%s)", exc.__class__.__name__)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m workers", description=__doc__.splitlines()[0])
    parser.add_argument("--burst", action="store_true", help="exit when the queues are empty")
    parser.add_argument("--fork", action="store_true",
                        help="fork a child per job (RQ's default Worker) instead of running jobs in-process")
    parser.add_argument("--no-reconcile", action="store_true", help="do not run the reconcile timer")
    args = parser.parse_args(argv)

    try:
        app = create_app()
    except (ConfigFileError, SettingsError) as exc:  # a bad setting or file: say which, no traceback
        sys.exit(f"python -m workers: {exc}")
    runtime.use(app)
    with app.app_context():
        svc = services()
        redis = svc.redis
        try:
            refuse_cluster(redis)
        except RedisClusterNotSupported as exc:
            sys.exit(f"python -m workers: KB_REDIS_URL: {exc}")
        except RedisError:
            pass  # unreachable now: RQ's worker says so and retries as before
        worker_class = TracedWorker if args.fork else TracedSimpleWorker
        worker = worker_class([queue(redis, name) for name in QUEUES], connection=redis)
        stop = threading.Event()
        if not args.no_reconcile and not args.burst:
            threading.Thread(target=reconcile_timer, args=(redis, svc.settings.reconcile_interval_seconds, stop),
                             daemon=True, name="reconcile-timer").start()
        try:
            worker.work(with_scheduler=True, burst=args.burst, logging_level=svc.settings.log_level)
        finally:
            stop.set()


if __name__ == "__main__":
    main()
