"""Overdue delayed jobs: put on their queue by every worker and by the reconciler, with no lock.

RQ's scheduler moves delayed jobs (``enqueue_in``) onto their queue from ONE worker at a time: the
holder of ``rq:scheduler-lock:<queue>``, a key that outlives a killed holder by 61 s, and that the other
workers try to take only every 10 minutes (never on their first pass). A delayed retry must not wait on
that one process, so every ``python -m workers`` moves, once a second, the jobs overdue by more than
``GRACE`` seconds (RQ's live scheduler, which looks every second, normally gets them first), and the
reconciler does the same before it looks for stalled work. A job is claimed with ``ZREM`` on the
scheduled registry: of several movers exactly one gets it and enqueues it.
"""
from __future__ import annotations

import time

from redis import Redis
from rq import Queue
from rq.exceptions import NoSuchJobError
from rq.job import Job
from rq.registry import ScheduledJobRegistry

GRACE = 2.0      # seconds past its due time before a job counts as overdue
BATCH = 1000     # jobs moved per queue per call


def registry_key(queue_name: str) -> str:
    return ScheduledJobRegistry.key_template.format(queue_name)


def still_scheduled(redis: Redis, queue_name: str, job_id: str, now: float | None = None) -> bool:
    """A scheduled job will be put on its queue without help: it is not overdue yet, or a mover has just
    claimed it. An overdue one is claimed here (taken off the registry), so the caller may enqueue it afresh
    as its only copy; one no longer in the registry will never be moved."""
    score = redis.zscore(registry_key(queue_name), job_id)
    if score is None:
        return False
    if score > (time.time() if now is None else now) - GRACE:
        return True
    return not claim(redis, queue_name, job_id)


def claim(redis: Redis, queue_name: str, job_id: str) -> bool:
    """Take the job off its scheduled registry; True for the one caller that did."""
    return bool(redis.zrem(registry_key(queue_name), job_id))


def move_overdue(redis: Redis, queue_names, now: float | None = None) -> int:
    """Enqueue every job overdue by more than GRACE seconds on these queues; returns how many were moved.

    A job whose hash expired is dropped from the registry: the reconciler re-enqueues its work from the
    ledger. A mover killed between the claim and the enqueue loses that one job the same way."""
    cutoff = int((time.time() if now is None else now) - GRACE)
    moved = 0
    for name in queue_names:
        key = registry_key(name)
        q = Queue(name, connection=redis)
        for raw in redis.zrangebyscore(key, 0, cutoff, start=0, num=BATCH):
            job_id = raw.decode() if isinstance(raw, bytes) else raw
            if not claim(redis, name, job_id):
                continue  # another worker (or RQ's scheduler) has it
            try:
                job = Job.fetch(job_id, connection=redis)
            except NoSuchJobError:
                continue
            q.enqueue_job(job, at_front=job.should_enqueue_at_front())
            moved += 1
    return moved
