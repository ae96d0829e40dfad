"""The one enqueue helper, ``RqJobs`` (``svc.jobs``: one method per job) and the outbox's relay: the one place that
knows how work is put on Redis.

Jobs are referenced by function (RQ stores each one's dotted path, ``workers.fulfil.fulfil``...). The domain
never imports this module: ``app.py`` hands it ``RqJobs`` as ``svc.jobs`` (the port, queue names included,
is ``middleware/orders/jobs.py``). Job ids derive from content (``fulfil-<id>-<attempt>``): enqueueing the
same attempt twice is a no-op.
"""
from __future__ import annotations

import json
from collections.abc import Callable
from datetime import timedelta

from redis import Redis
from sqlalchemy.engine import Engine
from rq import Queue
from rq.queue import EnqueueData
from rq.exceptions import NoSuchJobError
from rq.job import Job, JobStatus

from middleware.ledger import repository as repo
from middleware.metrics import tracing
from middleware.ledger.states import REVOKING
from middleware.orders.jobs import FULFILMENT_QUEUE, MAINTENANCE_QUEUE, QUEUES, SINK_QUEUE
from middleware.services import Services

from workers import deliver, due, events, followups, fulfil, reconcile, revoke

JOB_TIMEOUT = 300
OUTBOX_BATCH = 500   # outbox rows moved to RQ per transaction and pipelined round trip
WAITING = (JobStatus.QUEUED, JobStatus.DEFERRED)


def job_options(job_id: str, result_ttl: int = 600, failure_ttl: int = 7 * 86400) -> dict:
    """RQ's options for one of our jobs: its id, timeout, how long its result and its failure are kept, and
    the current trace context in its meta when tracing is on (middleware/metrics/tracing.py)."""
    return dict(job_id=job_id, job_timeout=JOB_TIMEOUT, result_ttl=result_ttl, failure_ttl=failure_ttl,
                meta=tracing.job_meta())


def queue(redis: Redis, name: str = FULFILMENT_QUEUE) -> Queue:
    return Queue(name, connection=redis)


def is_waiting(redis: Redis, job_id: str) -> bool:
    """The job will run without help: queued, or scheduled for a time not yet past (``due.GRACE``).

    A scheduled job overdue is not waiting, whatever RQ's scheduler does (``due.still_scheduled``)."""
    try:
        job = Job.fetch(job_id, connection=redis)
    except NoSuchJobError:
        return False
    status = job.get_status(refresh=False)
    if status == JobStatus.SCHEDULED and job.origin:
        return due.still_scheduled(redis, job.origin, job_id)
    return status in WAITING


def enqueue(redis: Redis, job: Callable, job_id: str, *args, queue_name: str = FULFILMENT_QUEUE, delay: float = 0,
            unless_waiting: bool = True, pipeline=False, meta: dict | None = None, **options) -> str | None:
    """The one way a job is put on Redis: ``job`` with ``args`` under ``job_id``, after ``delay`` seconds;
    None (nothing enqueued) if ``unless_waiting`` and that very job is already waiting. ``pipeline``: the
    job's hash and its place in the queue in one round trip (or a caller's Redis pipeline: the job joins its batch).
    ``meta``: the job's meta instead of the current trace context's. ``options``: ``job_options``' keywords."""
    if unless_waiting and is_waiting(redis, job_id):
        return None
    q, kwargs = queue(redis, queue_name), job_options(job_id, **options)
    if meta is not None:
        kwargs["meta"] = meta
    if delay > 0:
        q.enqueue_in(timedelta(seconds=delay), job, *args, **kwargs)
    elif pipeline is not True and pipeline:
        q.enqueue(job, *args, pipeline=pipeline, **kwargs)
    elif pipeline:
        with redis.pipeline() as pipe:
            q.enqueue(job, *args, pipeline=pipe, **kwargs)
            pipe.execute()
    else:
        q.enqueue(job, *args, **kwargs)
    return job_id


def enqueue_event(redis: Redis, source: str, inbound_event_id: int, attempt: int = 0, pipeline=None,
                  trace: str | None = None) -> str:
    """Enqueue the job that handles a recorded ``source`` event (``workers/events.py``: the source's job).

    A new event's job is enqueued once, from the outbox (``relay_outbox``: ``pipeline`` is its batch's, ``trace``
    the trace context the event's request left in its row); the reconciler and ``flask events`` re-enqueue a
    stalled one as the next attempt, under a new id.
    """
    job, job_id, meta = _event_target(source, inbound_event_id, attempt, trace)
    enqueue(redis, job, job_id, inbound_event_id, unless_waiting=bool(attempt),
            pipeline=True if pipeline is None else pipeline, meta=meta)
    return job_id


def _event_target(source: str, inbound_event_id: int, attempt: int, trace: str | None) -> tuple:
    """An event's job: its source's function, its id, and its meta (the trace context the event's request left in
    its outbox row; None: the current one)."""
    if source not in events.FOR_SOURCE:
        raise ValueError(f"event {inbound_event_id}: no job for {source!r} events")
    meta = {"trace": json.loads(trace)} if trace else None
    return events.FOR_SOURCE[source], f"event-{inbound_event_id}-{attempt}", meta


def _event_job(source: str, inbound_event_id: int, trace: str | None) -> EnqueueData:
    """An event's first job (``enqueue_event``'s function, id and options) as RQ's prepared data for a batch."""
    job, job_id, meta = _event_target(source, inbound_event_id, 0, trace)
    options = job_options(job_id)
    return Queue.prepare_data(job, args=(inbound_event_id,), job_id=job_id, timeout=options["job_timeout"],
                              result_ttl=options["result_ttl"], failure_ttl=options["failure_ttl"],
                              meta=options["meta"] if meta is None else meta)


def relay_outbox(engine: Engine, redis: Redis, batch: int = OUTBOX_BATCH) -> int:
    """Move the outbox's rows (committed with the events they name) to RQ, ``batch`` at a time: take the oldest
    rows (deleted under lock in the open transaction), enqueue their jobs with one ``enqueue_many`` in one
    pipelined round trip, commit. How many moved.

    Redis down: the transaction rolls back and every row stays (for the next call). A crash between the enqueue
    and the commit enqueues those jobs again under the same ids: the job finds its event no longer pending and
    does nothing."""
    moved, fulfilment = 0, queue(redis)
    while True:
        with engine.begin() as connection:
            rows = repo.take_outbox(connection, batch)
            if not rows:
                return moved
            unknown = next((row for row in rows if row.job != "event"), None)
            if unknown is not None:
                raise ValueError(f"outbox row {unknown.id}: unknown job {unknown.job!r}")
            # an event gone has nothing left to do: its row goes without a job
            jobs = [_event_job(row.source, int(row.ref), row.trace) for row in rows if row.source is not None]
            with redis.pipeline() as pipe:
                if jobs:
                    fulfilment.enqueue_many(jobs, pipeline=pipe)
                pipe.execute()
        moved += len(rows)
        if len(rows) < batch:
            return moved


class RqJobs:
    """``svc.jobs`` (the port in ``middleware/orders/jobs.py``) on RQ: each method enqueues one job function with
    the Redis client and database engine of ``services`` (looked up at each call: a forked child gets its own),
    under an id derived from its content."""

    queues = QUEUES

    def __init__(self, services: Services):
        self.services = services

    def attempt(self, fulfilment_id: str, state: str, attempts: int, delay: float = 0) -> str | None:
        """The next fulfil or revoke attempt of an order unless that very job is already waiting."""
        kind, job = ("revoke", revoke.revoke) if state == REVOKING else ("fulfil", fulfil.fulfil)
        return enqueue(self.services.redis, job, f"{kind}-{fulfilment_id}-{attempts}", fulfilment_id, delay=delay,
                       result_ttl=3600)

    def event(self, source: str, inbound_event_id: int, attempt: int = 0) -> str:
        return enqueue_event(self.services.redis, source, inbound_event_id, attempt)

    def followup(self, fulfilment_id: str, attempt: int, delay: float = 0) -> str | None:
        """Tell the store a granted order is granted (``workers/followups.py``: Google Play consume / acknowledge)."""
        return enqueue(self.services.redis, followups.followup, f"followup-{fulfilment_id}-{attempt}", fulfilment_id,
                       delay=delay)

    def reverse(self, fulfilment_id: str, slot: int) -> str | None:
        """Apply an order's pending refunds and disputes (the reconciler, when the order was busy)."""
        return enqueue(self.services.redis, events.reverse, f"reverse-{fulfilment_id}-{slot}", fulfilment_id)

    def delivery(self, delivery_id: str, attempt: int, delay: float = 0, tag: str = "") -> str | None:
        """Attempt ``attempt`` of a delivery to a sink (``workers/deliver.py``) unless that job is waiting.

        ``tag`` tells apart jobs for the same attempt that are not the same job: a retry after the rate limit
        or an early run (``t<ms>-<random>``, ``e<ms>-<random>``: a running job putting its delivery back must never
        reuse a waiting or running job's id, or the delivery would be left without a job), a replay (``r<time>``).
        """
        job_id = f"deliver-{delivery_id}-{attempt}" + (f"-{tag}" if tag else "")
        return enqueue(self.services.redis, deliver.deliver, job_id, delivery_id, queue_name=SINK_QUEUE, delay=delay)

    def reconcile(self, slot: int) -> str | None:
        """The reconciler's pass for interval ``slot`` (``workers/upkeep.py``: one worker per interval)."""
        return enqueue(self.services.redis, reconcile.reconcile, f"reconcile-{slot}", queue_name=MAINTENANCE_QUEUE,
                       failure_ttl=86400)

    def relay_outbox(self) -> int:
        return relay_outbox(self.services.engine, self.services.redis)

    def move_overdue(self) -> int:
        return due.move_overdue(self.services.redis, QUEUES)
