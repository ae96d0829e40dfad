"""A recorded store event's job is its source's (``workers/events.py``): the relay and the re-enqueues pick it by the
event's row; a job of the old single name still runs; a job given another source's event changes nothing."""
from __future__ import annotations

import pytest
from rq.job import Job
from sqlalchemy import select

from middleware.ledger.models import InboundEvent, OutboxEntry
from middleware.stores import app_store_events
from workers import events
from workers.queues import enqueue, enqueue_event, relay_outbox

from tests.support.orders_flow import drain
from tests.support.stripe_events import balances, completed, inbound, post


def _paid(client, stripe_fake) -> int:
    paid = completed(stripe_fake.session(client_reference_id="player-1",
                                         line_items=[{"price": "price_gems_100", "quantity": 1}]))
    assert post(client, paid).status_code == 200
    return max(_event_ids(client.application))


def _event_ids(app) -> list[int]:
    with app.extensions["kraty_bridge"].session() as session:
        return list(session.scalars(select(InboundEvent.id)))


@pytest.mark.parametrize("source", ["stripe", "app_store", "google_play", "kraty"])
def test_each_source_has_its_own_job(redis, source):
    job_id = enqueue_event(redis, source, 4242, attempt=3)
    assert job_id == "event-4242-3"
    assert Job.fetch(job_id, connection=redis).func_name == f"workers.events.{source}"


def test_a_source_without_a_job_is_refused(redis):
    with pytest.raises(ValueError, match="no job for 'paypal' events"):
        enqueue_event(redis, "paypal", 4242)


def test_the_relay_names_the_job_of_the_events_source(client, services, redis, stripe_fake):
    event_id = _paid(client, stripe_fake)
    with services.session() as session:
        assert [(row.job, row.ref) for row in session.scalars(select(OutboxEntry))] == [("event", str(event_id))]
    assert relay_outbox(services.engine, redis) == 1
    assert Job.fetch(f"event-{event_id}-0", connection=redis).func_name == "workers.events.stripe"


def test_an_outbox_row_whose_event_is_gone_is_dropped_without_a_job(services, redis):
    with services.session() as session:
        session.add(OutboxEntry(job="event", ref="987654"))
        session.commit()
    assert relay_outbox(services.engine, redis) == 1
    with services.session() as session:
        assert session.scalars(select(OutboxEntry)).all() == []
    assert redis.keys("rq:job:*") == []


def test_a_job_of_the_old_single_name_runs_its_events_source_job(client, services, redis, stripe_fake, emulator):
    event_id = _paid(client, stripe_fake)
    with services.session() as session:  # the relay never ran: as if queued by the previous version
        session.query(OutboxEntry).delete()
        session.commit()
    enqueue(redis, events.handle, f"event-{event_id}-0", event_id)
    drain(redis)
    assert [outcome for _, outcome, _ in inbound(services)] == ["processed"]
    assert balances(emulator)[0] == {"gems": 100}


def test_a_job_given_another_sources_event_marks_it_failed_and_grants_nothing(client, services, redis, stripe_fake,
                                                                             emulator):
    event_id = _paid(client, stripe_fake)
    assert app_store_events.handle_event(services, event_id) == "failed"
    assert inbound(services) == [(inbound(services)[0][0], "failed", "the app_store job was given a stripe event")]
    assert balances(emulator)[0] == {}
