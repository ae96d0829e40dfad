"""The transactional outbox: a store event's job is committed with the event, in the same commit, and moved to RQ
by the relay (``workers.queues.relay_outbox``, ``workers/relay.py``); the ingest request never talks to Redis."""
from __future__ import annotations

import threading
import time

import pytest
from redis import Redis
from redis.exceptions import RedisError
from rq.job import Job
from sqlalchemy import create_engine, select, text
from sqlalchemy import event as sa_event
from sqlalchemy.exc import OperationalError
from sqlalchemy.pool import NullPool

from middleware.ledger import repository as repo
from middleware.ledger.models import InboundEvent, OutboxEntry
from workers import relay
from workers.queues import FULFILMENT_QUEUE, JOB_TIMEOUT, queue, relay_outbox

from tests.support.orders_flow import drain, poll
from tests.support.stripe_events import balances, completed, event, inbound, order, post
from tests.support.accelbyte import make_app  # noqa: F401  (fixture)

DEAD_REDIS = "redis://127.0.0.1:1/0"


def _outbox(services) -> list[tuple[str, str]]:
    with services.session() as session:
        return [(row.job, row.ref) for row in session.scalars(select(OutboxEntry).order_by(OutboxEntry.id))]


def _event_ids(services) -> list[int]:
    with services.session() as session:
        return list(session.scalars(select(InboundEvent.id).order_by(InboundEvent.id)))


def _paid(stripe_fake, player: str = "player-1") -> dict:
    return completed(stripe_fake.session(client_reference_id=player,
                                         line_items=[{"price": "price_gems_100", "quantity": 1}]))


def test_the_event_and_its_job_commit_together_without_redis(make_app, services, redis, stripe_fake, emulator):
    down = make_app(redis_url=DEAD_REDIS)   # the web tier cannot reach Redis at all
    assert post(down.test_client(), _paid(stripe_fake)).status_code == 200
    (event_id,) = _event_ids(services)
    assert _outbox(services) == [("event", str(event_id))] and queue(redis).count == 0
    assert relay_outbox(services.engine, redis) == 1
    assert _outbox(services) == [] and queue(redis).job_ids == [f"event-{event_id}-0"]
    assert relay_outbox(services.engine, redis) == 0
    drain(redis)
    assert balances(emulator)[0] == {"gems": 100}


def test_a_duplicate_or_an_ignored_event_queues_nothing(client, services, redis, stripe_fake):
    paid = _paid(stripe_fake)
    assert post(client, paid).status_code == 200
    assert post(client, paid).get_json()["duplicate"] is True
    assert post(client, event("customer.created", {"id": "cus_1", "object": "customer"})).status_code == 200
    assert [outcome for _, outcome, _ in inbound(services)] == ["pending", "ignored"]
    assert len(_outbox(services)) == 1


def test_redis_down_at_the_relay_keeps_every_row(client, services, redis, stripe_fake):
    for n in range(3):
        assert post(client, _paid(stripe_fake, f"player-{n}")).status_code == 200
    dead = Redis.from_url(DEAD_REDIS, socket_connect_timeout=1)
    with pytest.raises(RedisError):
        relay_outbox(services.engine, dead)
    assert len(_outbox(services)) == 3 and queue(redis).count == 0
    assert relay_outbox(services.engine, redis) == 3 and _outbox(services) == []


def test_rows_move_in_batches_in_order(client, services, redis, stripe_fake):
    for n in range(7):
        assert post(client, _paid(stripe_fake, f"player-{n}")).status_code == 200
    assert relay_outbox(services.engine, redis, batch=3) == 7
    assert queue(redis).job_ids == [f"event-{event_id}-0" for event_id in _event_ids(services)]


def test_a_relay_that_dies_before_its_commit_grants_once(client, services, redis, stripe_fake, emulator):
    paid = _paid(stripe_fake)
    assert post(client, paid).status_code == 200

    def crash(*_):
        raise RuntimeError("killed between the enqueue and the commit")
    sa_event.listen(services.engine, "commit", crash)   # the relay's transaction cannot commit
    try:
        with pytest.raises(RuntimeError):
            relay_outbox(services.engine, redis)
    finally:
        sa_event.remove(services.engine, "commit", crash)
    assert len(_outbox(services)) == 1 and queue(redis).count == 1   # queued, and still in the outbox
    assert relay_outbox(services.engine, redis) == 1   # the same job id again
    drain(redis)
    assert order(services, paid["data"]["object"]["id"])["state"] == "FULFILLED"
    assert balances(emulator)[0] == {"gems": 100} and len(emulator.ledger()) == 1


def test_the_relayed_job_is_the_events_first_job(client, services, redis, stripe_fake):
    """The relay's batch (``enqueue_many``) makes the very job ``enqueue_event`` makes: its id, function,
    argument, queue, timeout and TTLs; the trace context of its row in its meta."""
    assert post(client, _paid(stripe_fake)).status_code == 200
    (event_id,) = _event_ids(services)
    with services.session() as session:
        session.execute(OutboxEntry.__table__.update().values(trace='{"traceparent": "00-ab-cd-01"}'))
        session.commit()
    assert relay_outbox(services.engine, redis) == 1
    job = Job.fetch(f"event-{event_id}-0", connection=redis)
    assert (job.func_name, job.args, job.origin, job.timeout) == ("workers.events.stripe", (event_id,),
                                                                  FULFILMENT_QUEUE, JOB_TIMEOUT)
    assert (job.result_ttl, job.failure_ttl) == (600, 7 * 86400)
    assert job.meta == {"trace": {"traceparent": "00-ab-cd-01"}} and job.get_status() == "queued"


def test_a_relay_skips_the_rows_another_holds_and_a_rollback_gives_them_back(client, services, redis,
                                                                             stripe_fake):
    if services.engine.dialect.name != "postgresql":
        pytest.skip("SKIP LOCKED is PostgreSQL's (SQLite's writer lock serialises the relays)")
    for n in range(3):
        assert post(client, _paid(stripe_fake, f"player-{n}")).status_code == 200
    first, second, third = _event_ids(services)
    with services.engine.connect() as other:
        transaction = other.begin()
        assert [row.ref for row in repo.take_outbox(other, 2)] == [str(first), str(second)]
        assert relay_outbox(services.engine, redis) == 1   # the row the other one does not hold
        transaction.rollback()                            # the other one dies: its rows are back
    assert relay_outbox(services.engine, redis) == 2
    assert queue(redis).job_ids == [f"event-{n}-0" for n in (third, first, second)] and not _outbox(services)


def test_the_relay_thread_moves_a_new_events_job(client, services, redis, stripe_fake):
    stop = threading.Event()
    thread = relay.start(services.engine, redis, stop)
    try:
        assert post(client, _paid(stripe_fake)).status_code == 200
        (event_id,) = _event_ids(services)
        poll(lambda: queue(redis, FULFILMENT_QUEUE).count == 1, timeout=20, what="the relay to queue the job")
        assert Job.fetch(f"event-{event_id}-0", connection=redis).func_name == "workers.events.stripe"
        poll(lambda: not _outbox(services), timeout=20, what="the relay to delete the row")
    finally:
        stop.set()
        thread.join(10)
    assert not thread.is_alive()


def test_an_event_insert_on_a_connection_the_server_dropped_is_refused_and_the_next_one_records(services):
    """The ingest statement runs on the pooled connection's psycopg connection: a connection the server dropped
    raises SQLAlchemy's OperationalError (the API answers 503), is invalidated, and the next event records."""
    if services.engine.dialect.name != "postgresql":
        pytest.skip("the driver-level fast path is PostgreSQL's")

    def record(event_id: str) -> int | None:
        return repo.insert_event(services.engine, source="stripe", provider_event_id=event_id, namespace="demo",
                                 raw_body=b"{}", outcome="pending", event_type="checkout.session.completed")
    assert record("demo:evt_a") is not None
    with services.engine.connect() as connection:  # the pool holds one connection now: end it server-side
        pids = [connection.exec_driver_sql("SELECT pg_backend_pid()").scalar_one()]
    admin = create_engine(services.engine.url, poolclass=NullPool)  # another connection than the pool's
    with admin.begin() as connection:
        connection.execute(text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE pid = ANY(:pids)"),
                           {"pids": pids})
    admin.dispose()
    with pytest.raises(OperationalError):
        record("demo:evt_b")
    assert record("demo:evt_b") is not None and record("demo:evt_a") is None
    assert _outbox(services) == [("event", str(i)) for i in _event_ids(services)]


def test_events_committed_without_a_notify_of_their_own_are_moved_by_the_woken_relay(client, services, redis,
                                                                                      stripe_fake, monkeypatch):
    """An ingest process NOTIFYs at most once per NOTIFY_EVERY: a burst's later rows come without a notification.
    The relay woken by the first keeps draining (LINGER): with the no-notification poll made very long, the
    whole burst still reaches the queue."""
    if services.engine.dialect.name != "postgresql":
        pytest.skip("LISTEN/NOTIFY is PostgreSQL's")
    monkeypatch.setattr(relay, "POLL", 600.0)
    monkeypatch.setattr(repo, "NOTIFY_EVERY", 600.0)   # one NOTIFY for the whole burst...
    monkeypatch.setattr(relay, "LINGER", 60.0)         # ...and a relay that lingers as long (a slow machine)
    monkeypatch.setattr(repo._Notifier, "last", float("-inf"))
    sent = []

    def counting(engine, **values):
        sent.append(repo._Notifier.last)
        return real(engine, **values)
    real = repo.insert_event
    stop = threading.Event()
    thread = relay.start(services.engine, redis, stop)
    try:
        time.sleep(0.5)  # the relay is listening: its first drain found nothing
        for n in range(6):
            assert post(client, _paid(stripe_fake, f"player-{n}")).status_code == 200
            counting(services.engine, source="stripe", provider_event_id=f"demo:evt_burst_{n}", namespace="demo",
                     raw_body=b"{}", outcome="pending", event_type="checkout.session.completed")
        assert len(set(sent)) == 1   # one NOTIFY (the first request's), none since
        poll(lambda: queue(redis, FULFILMENT_QUEUE).count == 12, timeout=20, what="the relay to queue the burst")
        # a batch's rows are deleted in the transaction that queued their jobs, committed just after the enqueue
        poll(lambda: not _outbox(services), timeout=20, what="the relay to delete the burst's rows")
    finally:
        stop.set()
        thread.join(10)
    assert not thread.is_alive()
