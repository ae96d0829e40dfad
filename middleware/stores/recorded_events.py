"""A recorded store event's job, on its ``inbound_events`` row: take it while ``pending``, run its source's
handler, keep the outcome.

The webhook answers the store as soon as the event is committed; its source's job (``workers/events.py``:
``stripe``, ``app_store``, ``google_play``, ``kraty``) calls that source's module (``stores/stripe_events.py``...),
which calls ``handle`` here with its own handler. The attempts are counted on the event's row: an exception
reaches RQ, the event stays ``pending`` and the reconciler enqueues it again, until ``KB_RETRY_MAX_ATTEMPTS``
marks it ``failed`` for ops.
"""
from __future__ import annotations

import logging
from collections.abc import Callable

from marshmallow import ValidationError

from config.catalog import Game
from middleware.ledger.models import InboundEvent, utcnow
from middleware.metrics import recorders as metrics
from middleware.services import Services

log = logging.getLogger(__name__)

PENDING = "pending"
Handler = Callable[[Services, Game, bytes], tuple[str, str, str | None]]  # -> (outcome, detail, fulfilment id)


def handle(svc: Services, inbound_event_id: int, source: str, handler: Handler) -> str | None:
    """``handler(svc, game, raw body)`` on the recorded ``source`` event ``inbound_event_id`` if it is still
    pending, its outcome kept on its row; the event's outcome (None: no such event)."""
    with svc.session() as session:
        row = session.get(InboundEvent, inbound_event_id)
        if row is None or row.outcome != PENDING:
            return None if row is None else row.outcome
        row.attempts += 1
        row.attempted_at = utcnow()
        session.commit()
        recorded_source, namespace, raw = row.source, row.namespace, row.raw_body
    game = svc.catalog.game(namespace) if namespace else None
    if recorded_source != source:  # a job enqueued by hand for another source's event
        outcome, detail, fulfilment_id = "failed", f"the {source} job was given a {recorded_source} event", None
    elif game is None:
        outcome, detail, fulfilment_id = "failed", f"no handler for {source} events of namespace {namespace}", None
    else:
        try:
            outcome, detail, fulfilment_id = handler(svc, game, raw)
        except ValidationError as exc:  # checked when it came in: only a changed catalog or code gets here
            outcome, detail, fulfilment_id = "failed", f"cannot read the event: {exc.messages}", None
    with svc.session() as session:
        row = session.get(InboundEvent, inbound_event_id)
        row.outcome, row.detail = outcome, detail[:2000]
        row.fulfilment_id = fulfilment_id or row.fulfilment_id
        session.commit()
    log.info("%s event %s: %s (%s)", recorded_source, inbound_event_id, outcome, detail)
    metrics.handled(recorded_source, outcome)  # kb_handled_events_total
    return outcome


def source_of(svc: Services, inbound_event_id: int) -> str | None:
    """The recorded event's source (None: no such event)."""
    with svc.session() as session:
        row = session.get(InboundEvent, inbound_event_id)
        return None if row is None else row.source
