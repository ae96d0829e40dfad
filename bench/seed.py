"""Put work on the queues without the web tier: orders recorded straight into the ledger in RECEIVED
state (as the fulfil PUT records them, minus the inline attempt) and their fulfil jobs enqueued."""
from __future__ import annotations

import uuid
from datetime import timedelta

from rq import Queue

from middleware.ledger import states
from middleware.ledger.models import Fulfilment, HistoryEntry, utcnow
from middleware.orders.lines import build_items, request_hash, resolve_line
from workers.queues import FULFILMENT_QUEUE, JOB_TIMEOUT

LINES = [{"itemSku": "gems_100", "quantity": 1}]
BATCH = 500


def record_received(services, count: int, prefix: str | None = None, users: int = 1000) -> list[str]:
    """``count`` new third-party orders of gems_100 x1, RECEIVED, lease free; their ids."""
    prefix = prefix or uuid.uuid4().hex[:8]
    game = services.catalog.game("demo")
    digest = request_hash(LINES)
    ids: list[str] = []
    for start in range(0, count, BATCH):
        now = utcnow() - timedelta(seconds=1)
        rows = []
        for n in range(start, min(count, start + BATCH)):
            f = Fulfilment(id=uuid.uuid4().hex, namespace="demo", source="accelbyte",
                           transaction_id=f"{prefix}-{n}", player_id=f"u{n % users}", environment="production",
                           state=states.RECEIVED, request_hash=digest, lines=LINES,
                           items=build_items([resolve_line(game, line) for line in LINES]), attempts=0,
                           created_at=now, updated_at=now)
            f.history.append(HistoryEntry(at=now, actor="bench", from_state=None, to_state=states.RECEIVED,
                                          detail={"event": "received", "lines": 1}))
            rows.append(f)
            ids.append(f.id)
        with services.session() as session:
            session.add_all(rows)
            session.commit()
    return ids


def enqueue_orders(services, ids: list[str]) -> list[str]:
    """The fulfil job of each order, exactly as the app enqueues a first worker attempt (``svc.jobs``)."""
    return [services.jobs.attempt(fulfilment_id, states.RECEIVED, 0) for fulfilment_id in ids]


def enqueue_noops(redis, count: int, queue: str = FULFILMENT_QUEUE, result_ttl: int = 3600) -> list[str]:
    """The baseline: as many no-op jobs, same queue and job options as a fulfil attempt (or, with ``queue``
    and ``result_ttl``, as another job: a delivery's)."""
    q = Queue(queue, connection=redis)
    prefix = uuid.uuid4().hex[:8]
    job_ids = []
    for n in range(count):
        job = q.enqueue("bench.noop.noop", f"{prefix}-{n}", job_id=f"noop-{prefix}-{n}", job_timeout=JOB_TIMEOUT,
                        result_ttl=result_ttl, failure_ttl=7 * 86400)
        job_ids.append(job.id)
    return job_ids


def job_window(redis, job_ids: list[str]) -> tuple[float, int]:
    """(seconds from the first job's start to the last job's end, jobs finished), from RQ's own timestamps."""
    window, finished, _ = job_times(redis, job_ids)
    return window, finished


def job_times(redis, job_ids: list[str]) -> tuple[float, int, list[float]]:
    """``job_window`` plus each finished job's own run time in seconds (RQ's start .. end)."""
    from rq.job import Job, JobStatus
    starts, ends, durations, finished = [], [], [], 0
    for i in range(0, len(job_ids), 500):
        for job in Job.fetch_many(job_ids[i:i + 500], connection=redis):
            if job is None or job.started_at is None or job.ended_at is None:
                continue
            starts.append(job.started_at)
            ends.append(job.ended_at)
            durations.append((job.ended_at - job.started_at).total_seconds())
            finished += job.get_status(refresh=False) == JobStatus.FINISHED
    if not starts:
        return 0.0, 0, []
    return (max(ends) - min(starts)).total_seconds(), finished, durations


def enqueue_floor(redis, ids: list[str]) -> list[str]:
    """The floor job (``bench/onecall.py``) of each order, with a fulfil attempt's job options."""
    q = Queue(FULFILMENT_QUEUE, connection=redis)
    return [q.enqueue("bench.onecall.one_call", fulfilment_id, job_id=f"floor-{fulfilment_id}",
                      job_timeout=JOB_TIMEOUT, result_ttl=3600, failure_ttl=7 * 86400).id for fulfilment_id in ids]
