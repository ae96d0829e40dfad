"""Store event jobs: one per source, each handling an event its webhook recorded (``inbound_events``) in that
source's module; and applying an order's pending reversals.

The outbox's relay and the re-enqueues (reconciler, ``flask events replay``) pick an event's job by its row's
source (``FOR_SOURCE``)."""
from __future__ import annotations

from middleware.kraty import webhooks as kraty_webhooks
from middleware.orders import actions
from middleware.services import Services
from middleware.stores import app_store_events, google_play_events, recorded_events, stripe_events

from workers import runtime


@runtime.job
def stripe(svc: Services, inbound_event_id: int) -> str | None:
    return stripe_events.handle_event(svc, inbound_event_id)


@runtime.job
def app_store(svc: Services, inbound_event_id: int) -> str | None:
    return app_store_events.handle_event(svc, inbound_event_id)


@runtime.job
def google_play(svc: Services, inbound_event_id: int) -> str | None:
    return google_play_events.handle_event(svc, inbound_event_id)


@runtime.job
def kraty(svc: Services, inbound_event_id: int) -> str | None:
    return kraty_webhooks.handle_event(svc, inbound_event_id)


FOR_SOURCE = {"stripe": stripe, "app_store": app_store, "google_play": google_play, "kraty": kraty}


@runtime.job
def handle(svc: Services, inbound_event_id: int) -> str | None:
    """The one event job of earlier versions (``workers.events.handle``), for its jobs still queued after an
    upgrade: the event's source's job, run here."""
    job = FOR_SOURCE.get(recorded_events.source_of(svc, inbound_event_id))
    return None if job is None else job(inbound_event_id)


@runtime.job
def reverse(svc: Services, fulfilment_id: str) -> str | None:
    return actions.run(svc, fulfilment_id, "worker", actions.REVERSE)
