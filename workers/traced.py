"""RQ worker classes that run each job in its tracing span (middleware/metrics/tracing.py), continuing the trace of
the request or job that enqueued it. ``python -m workers`` uses them; a plain ``rq worker`` can too:
``rq worker -w workers.traced.TracedSimpleWorker ...``. With tracing off they are RQ's own."""
from __future__ import annotations

from rq import SimpleWorker, Worker

from middleware.metrics import tracing


class TracedJobs:
    flush_after_job = False  # a forked work horse exits at once: send its spans first

    def perform_job(self, job, queue) -> bool:
        try:
            with tracing.job_span(job, queue.name):
                return super().perform_job(job, queue)
        finally:
            if self.flush_after_job:
                tracing.flush()


class TracedSimpleWorker(TracedJobs, SimpleWorker):
    """Jobs in the worker's own process (``python -m workers``)."""


class TracedWorker(TracedJobs, Worker):
    """A forked work horse per job (``python -m workers --fork``)."""
    flush_after_job = True
