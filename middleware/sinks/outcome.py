"""What one attempt at sink deliveries leaves: each delivery delivered, scheduled again (its next job enqueued
after the commit), disabled with its sink (410), or dead-lettered; and the tag of a job that puts its delivery
back until it is due or the rate limit allows it."""
from __future__ import annotations

import logging
import uuid
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from config.sinks import Sink
from middleware.ledger.models import Delivery
from middleware.metrics import recorders as metrics
from middleware.orders import retry
from middleware.services import Services
from middleware.sinks import http
from middleware.sinks.states import CANCELLED, DEAD, DELIVERED, DISABLED, FAILED, disable_sink

log = logging.getLogger("middleware.sinks.delivery")   # the delivery state machine's one logger

PERMANENT = frozenset({400, 413, 422})  # a segment sink's request that can never succeed as it is: dead at once


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def later(kind: str, due: datetime) -> str:
    """The tag of a job that puts its delivery back until ``due``: unique, so it never collides with the
    running job or another waiting one (the delivery's lease and attempt count keep attempts single)."""
    return f"{kind}{_ms(due)}-{uuid.uuid4().hex[:8]}"

def dead_unsent(session: Session, d: Delivery, reason: str, now: datetime) -> str:
    d.state, d.next_attempt_at, d.updated_at, d.last_error = DEAD, None, now, reason
    session.commit()
    log.error("delivery %s to sink %s dead-lettered unsent: %s", d.id, d.sink, reason)
    return DEAD

def record(svc: Services, sink: Sink, claimed: dict[str, int], result: http.SendResult, now: datetime,
           lead_id: str) -> str:
    """The answer to one request, for every delivery it carried; returns what the lead delivery is now."""
    states: dict[str, str] = {}
    retries: list[tuple[str, int, float]] = []
    permanent = sink.type == "segment" and result.status in PERMANENT
    policy = retry.for_sink(sink)
    with svc.session() as session:
        rows = {d.id: d for d in session.scalars(select(Delivery).where(Delivery.id.in_(list(claimed))))}
        if result.status == 410:
            reason = f"{sink.url} answered 410 Gone (delivery {lead_id})"
            stopped = disable_sink(session, sink.name, reason, now)
            log.error("sink %s DISABLED: %s; %d waiting deliveries stopped. Fix the endpoint, then `flask sinks "
                      "enable %s --reason ...` and `flask sinks replay --sink %s --since ... --reason ...`",
                      sink.name, reason, stopped, sink.name, sink.name)
        for delivery_id, attempt in claimed.items():
            d = rows.get(delivery_id)
            if d is None:  # removed while it was being sent
                states[delivery_id] = "missing"
                continue
            d.lease_until, d.last_status, d.updated_at = None, result.status, now
            if d.state == CANCELLED and not result.ok:  # its player was erased meanwhile: never retried
                states[delivery_id] = d.state
                continue
            if result.ok:
                d.state, d.delivered_at, d.next_attempt_at, d.last_error = DELIVERED, now, None, None
                metrics.delivered(sink.name, d.created_at, now)  # kb_sink_delivery_seconds
            elif result.status == 410:
                d.state, d.next_attempt_at = DISABLED, None
            else:
                d.last_error = result.error
                delay = None if permanent else policy.next_delay(attempt, result.retry_after)
                if delay is None:
                    d.state, d.next_attempt_at = DEAD, None
                    log.error("delivery %s to sink %s dead-lettered after %d attempts: %s",
                              delivery_id, sink.name, attempt, result.error)
                else:
                    d.state, d.next_attempt_at = FAILED, now + timedelta(seconds=delay)
                    retries.append((delivery_id, attempt + 1, delay))
            states[delivery_id] = d.state
        session.commit()
    for delivery_id, attempt, delay in retries:
        svc.jobs.delivery(delivery_id, attempt, delay)
        log.info("delivery %s to sink %s: attempt %d failed (%s), next in %.0f s",
                 delivery_id, sink.name, attempt - 1, result.error, delay)
    return states[lead_id]
