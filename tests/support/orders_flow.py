"""Shared test helpers: the emulator's config, the demo token, draining the queues."""
from __future__ import annotations

from rq import SimpleWorker
from rq.job import Job
from sqlalchemy import Engine, create_engine, text

from emulator.config import load as load_emulator_config
from config.settings import ROOT
from middleware.ledger.models import table_names_children_first
from workers import runtime
from workers.queues import QUEUES, queue, relay_outbox

TOKEN = "demo-storefront-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def emulator_config() -> dict:
    config = load_emulator_config(str(ROOT / "emulator" / "example.toml"))
    return config


def fulfil_path(user="player-1", txn="txn-1", ns="demo", version=2):
    return f"/platform/v{version}/admin/namespaces/{ns}/users/{user}/fulfillments/{txn}"


def put_order(client, items, user="player-1", txn="txn-1", ns="demo", version=2, headers=None):
    return client.put(fulfil_path(user, txn, ns, version), json={"items": items}, headers=headers or AUTH)


def empty_ledger(database: str | Engine) -> None:
    """Delete every row of every table (children first); ``database``: a URL, or an engine kept between calls."""
    engine = create_engine(database) if isinstance(database, str) else database
    deletes = [f"DELETE FROM {table}" for table in table_names_children_first()]
    with engine.begin() as connection:
        if connection.dialect.name == "postgresql":   # one round trip (SQLite's driver takes one statement a call)
            connection.exec_driver_sql("; ".join(deletes))
        else:
            for delete in deletes:
                connection.execute(text(delete))
    if engine is not database:
        engine.dispose()


def release_scheduled(redis) -> int:
    """Move every scheduled (delayed-retry) job onto its queue now: the tests' way of advancing time."""
    moved = 0
    for name in QUEUES:
        q = queue(redis, name)
        registry = q.scheduled_job_registry
        for job_id in registry.get_job_ids():
            job = Job.fetch(job_id, connection=redis)
            registry.remove(job)
            q.enqueue_job(job)
            moved += 1
    return moved


def relay(redis) -> int:
    """Move the outbox's jobs to RQ now, as a worker's relay would (the ledger of the app jobs run in)."""
    app = runtime._app
    return relay_outbox(app.extensions["kraty_bridge"].engine, redis) if app is not None else 0


def drain(redis, rounds: int = 50, worker_class=SimpleWorker) -> None:
    """Run workers in burst mode until nothing is queued or scheduled (bounded); the outbox relayed first."""
    for _ in range(rounds):
        relay(redis)
        worker = worker_class([queue(redis, name) for name in QUEUES], connection=redis)
        worker.work(burst=True, logging_level="WARNING")
        if not release_scheduled(redis) and not relay(redis):
            return
    raise AssertionError("queues did not drain")


def poll(check, timeout: float = 20.0, interval: float = 0.05, what: str = "condition"):
    """Wait (bounded) for ``check()`` to return something truthy, for waits on other processes."""
    import time
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def make_due(services) -> None:
    """Advance the ledger's clock: every scheduled retry is due and every order looks idle."""
    from datetime import timedelta

    from sqlalchemy import update

    from middleware.ledger.models import Fulfilment, utcnow
    past = utcnow() - timedelta(seconds=1)
    with services.session() as session:
        session.execute(update(Fulfilment).where(Fulfilment.next_attempt_at.is_not(None))
                        .values(next_attempt_at=past))
        session.execute(update(Fulfilment).values(updated_at=past))
        session.commit()
