"""The jobs port (``middleware/orders/jobs.py``): the domain enqueues through ``svc.jobs``, never by importing
``workers``; ``workers/queues.py`` enqueues the job functions themselves, and RQ stores the same dotted paths
as when jobs were named by strings, so jobs queued before the change still run (the store events' one job of earlier
versions, ``workers.events.handle``, is kept beside the per-source jobs that replaced it)."""
from __future__ import annotations

import ast
import threading
from pathlib import Path

from rq.job import Job
from rq.utils import import_attribute

from app import create_app
from middleware.orders.jobs import QUEUES
from workers import deliver, events, followups, fulfil, reconcile, revoke, runtime
from workers.queues import MAINTENANCE_QUEUE, SINK_QUEUE, RqJobs, queue
from workers.upkeep import Outages, upkeep

from tests.support.orders_flow import poll

ROOT = Path(__file__).resolve().parent.parent


def test_jobs_enqueued_through_the_port_keep_their_dotted_paths(services, redis):
    assert isinstance(services.jobs, RqJobs) and services.jobs.queues == QUEUES
    enqueued = {
        services.jobs.attempt("f-1", "RECEIVED", 0): "workers.fulfil.fulfil",
        services.jobs.attempt("f-2", "REVOKING", 3): "workers.revoke.revoke",
        services.jobs.event("stripe", 7, 1): "workers.events.stripe",
        services.jobs.reverse("f-3", 2): "workers.events.reverse",
        services.jobs.followup("f-4", 0): "workers.followups.followup",
        services.jobs.delivery("d-1", 1, tag="r1"): "workers.deliver.deliver",
        services.jobs.reconcile(1): "workers.reconcile.reconcile",
    }
    assert list(enqueued) == ["fulfil-f-1-0", "revoke-f-2-3", "event-7-1", "reverse-f-3-2", "followup-f-4-0",
                              "deliver-d-1-1-r1", "reconcile-1"]
    assert {job_id: Job.fetch(job_id, connection=redis).func_name for job_id in enqueued} == enqueued
    assert queue(redis, SINK_QUEUE).job_ids == ["deliver-d-1-1-r1"]
    assert queue(redis, MAINTENANCE_QUEUE).job_ids == ["reconcile-1"]


def test_a_job_function_keeps_its_module_and_name():
    for job, path in ((fulfil.fulfil, "workers.fulfil.fulfil"), (revoke.revoke, "workers.revoke.revoke"),
                      (events.stripe, "workers.events.stripe"), (events.app_store, "workers.events.app_store"),
                      (events.google_play, "workers.events.google_play"), (events.kraty, "workers.events.kraty"),
                      (events.handle, "workers.events.handle"), (events.reverse, "workers.events.reverse"),
                      (followups.followup, "workers.followups.followup"), (deliver.deliver, "workers.deliver.deliver"),
                      (reconcile.reconcile, "workers.reconcile.reconcile")):
        assert f"{job.__module__}.{job.__qualname__}" == path


def test_a_plain_rq_worker_finds_the_app_factory():
    assert import_attribute(runtime.APP_FACTORY) is create_app


def test_the_domain_never_imports_workers():
    offenders = []
    for path in (ROOT / "middleware").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            offenders += [f"{path.relative_to(ROOT)}: {n}" for n in names if n == "workers" or n.startswith("workers.")]
    assert offenders == []


def test_the_upkeep_thread_enqueues_the_reconciler_through_svc_jobs(services, redis):
    stop, outages = threading.Event(), Outages()
    thread = threading.Thread(target=upkeep, args=(services.jobs, redis, services.engine, services.identity, 3600.0,
                                                   True, outages, stop), daemon=True)
    thread.start()
    try:
        poll(lambda: queue(redis, MAINTENANCE_QUEUE).count == 1, timeout=20, what="the reconciler's job")
    finally:
        stop.set()
        thread.join(10)
    (job_id,) = queue(redis, MAINTENANCE_QUEUE).job_ids
    assert job_id.startswith("reconcile-")
    assert Job.fetch(job_id, connection=redis).func_name == "workers.reconcile.reconcile"
