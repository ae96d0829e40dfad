"""Store event jobs: handle an event the webhook recorded; apply an order's pending reversals.

The webhook answers the store as soon as the event is committed; this job does the rest. It
counts its attempts on the event's row: an exception reaches RQ, the event stays ``pending`` and
the reconciler enqueues it again, until ``KB_RETRY_MAX_ATTEMPTS`` marks it ``failed`` for ops.
"""
from __future__ import annotations

import logging

from marshmallow import ValidationError

from middleware.orders import actions
from middleware.ledger.models import InboundEvent, utcnow
from middleware.metrics import recorders as metrics
from middleware.services import Services, services
from middleware.kraty import webhooks as kraty_webhooks
from middleware.stores import app_store_events, google_play_events, stripe_events

from workers import runtime

log = logging.getLogger(__name__)

HANDLERS = {"stripe": stripe_events.handle_recorded, "app_store": app_store_events.handle_recorded,
            "google_play": google_play_events.handle_recorded, "kraty": kraty_webhooks.handle_recorded}
PENDING = "pending"


def handle_now(svc: Services, inbound_event_id: int) -> str | None:
    with svc.session() as session:
        row = session.get(InboundEvent, inbound_event_id)
        if row is None or row.outcome != PENDING:
            return None if row is None else row.outcome
        row.attempts += 1
        row.attempted_at = utcnow()
        session.commit()
        source, namespace, raw = row.source, row.namespace, row.raw_body
    game = svc.catalog.game(namespace) if namespace else None
    if source not in HANDLERS or game is None:
        outcome, detail, fulfilment_id = "failed", f"no handler for {source} events of namespace {namespace}", None
    else:
        try:
            outcome, detail, fulfilment_id = HANDLERS[source](svc, game, raw)
        except ValidationError as exc:  # checked when it came in: only a changed catalog or code gets here
            outcome, detail, fulfilment_id = "failed", f"cannot read the event: {exc.messages}", None
    with svc.session() as session:
        row = session.get(InboundEvent, inbound_event_id)
        row.outcome, row.detail = outcome, detail[:2000]
        row.fulfilment_id = fulfilment_id or row.fulfilment_id
        session.commit()
    log.info("%s event %s: %s (%s)", source, inbound_event_id, outcome, detail)
    metrics.handled(source, outcome)  # kb_handled_events_total
    return outcome


def handle(inbound_event_id: int) -> str | None:
    with runtime.app().app_context():
        return handle_now(services(), inbound_event_id)


def reverse(fulfilment_id: str) -> str | None:
    with runtime.app().app_context():
        return actions.run(services(), fulfilment_id, "worker", actions.REVERSE)
