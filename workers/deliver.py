"""Delivery jobs: send one event to one sink, at least once, on the sink's retry schedule.

``deliver(delivery_id)`` makes one attempt: only 2xx is success; anything else (a timeout, no answer,
another status) schedules the next attempt after the sink's delay for it, or later when the answer had a
``Retry-After``; 410 Gone disables the sink; a failure of the last attempt dead-letters the delivery. A
delivery over its sink's rate limit is put back until the limit allows it, without counting an attempt.
Each delivery is its own job, so one player's (or one event's) failures never hold up the others.
"""
from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlalchemy import or_, select, update

from config.sinks import Sink
from middleware.ledger.models import Delivery, utcnow
from middleware.services import Services, services
from middleware.sinks import http, ratelimit
from middleware.sinks.events import envelope
from middleware.sinks.states import ACTIVE, DEAD, DELIVERED, DISABLED, FAILED, disable_sink, is_disabled

from . import runtime
from .queues import enqueue_delivery

log = logging.getLogger(__name__)

EARLY_SLACK = timedelta(seconds=1)   # a job this much before its due time still runs
LEASE_MARGIN = 30.0                  # seconds beyond the sink's timeout one attempt owns its delivery
BATCH = 500


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def deliver_now(svc: Services, delivery_id: str, now: datetime | None = None) -> str:
    """One attempt at a delivery; returns what it is now (or ``early``, ``busy``, ``throttled``).

    ``now`` drives the schedule (tests pass a controllable clock); the signature's timestamp is always the
    real time of sending.
    """
    clock = (lambda: now) if now is not None else utcnow
    started = clock()
    with svc.session() as session:
        d = session.get(Delivery, delivery_id)
        if d is None:
            return "missing"
        if d.state not in ACTIVE:
            return d.state
        sink = svc.sinks.get(d.sink)
        if sink is None or is_disabled(session, d.sink):
            d.state, d.next_attempt_at, d.updated_at = (DEAD if sink is None else DISABLED), None, started
            d.last_error = f"sink {d.sink} is no longer configured" if sink is None else f"sink {d.sink} is disabled"
            session.commit()
            log.warning("delivery %s: %s", delivery_id, d.last_error)
            return d.state
        if d.next_attempt_at is not None and d.next_attempt_at > started + EARLY_SLACK:
            wait = (d.next_attempt_at - started).total_seconds()
            enqueue_delivery(svc.redis, delivery_id, d.attempts + 1, wait, tag=f"e{_ms(d.next_attempt_at)}")
            return "early"
        if d.lease_until is not None and d.lease_until > started:
            return "busy"
        attempts, msg_id, body = d.attempts, d.event_id, envelope(d.event)  # webhook-id: the event's id
        wait = ratelimit.acquire(svc.redis, sink)
        if wait > 0:
            enqueue_delivery(svc.redis, delivery_id, attempts + 1, wait, tag=f"t{_ms(started + timedelta(seconds=wait))}")
            return "throttled"
        claimed = session.execute(
            update(Delivery).where(Delivery.id == delivery_id, Delivery.state.in_(ACTIVE),
                                   Delivery.attempts == attempts,
                                   or_(Delivery.lease_until.is_(None), Delivery.lease_until <= started))
            .values(attempts=attempts + 1, updated_at=started,
                    lease_until=started + timedelta(seconds=sink.timeout + LEASE_MARGIN))).rowcount
        session.commit()
        if not claimed:
            return "busy"
    result = http.send(sink, msg_id, body)
    return _record(svc, sink, delivery_id, attempts + 1, result, clock())


def _record(svc: Services, sink: Sink, delivery_id: str, attempt: int, result: http.SendResult,
            now: datetime) -> str:
    with svc.session() as session:
        d = session.get(Delivery, delivery_id)
        if d is None:  # removed while it was being sent
            return "missing"
        d.lease_until, d.last_status, d.updated_at = None, result.status, now
        if result.ok:
            d.state, d.delivered_at, d.next_attempt_at, d.last_error = DELIVERED, now, None, None
            session.commit()
            return DELIVERED
        d.last_error = result.error
        if result.status == 410:
            reason = f"{sink.url} answered 410 Gone (delivery {delivery_id})"
            stopped = disable_sink(session, sink.name, reason, now)
            d.state, d.next_attempt_at = DISABLED, None
            session.commit()
            log.error("sink %s DISABLED: %s; %d waiting deliveries stopped. Fix the endpoint, then "
                      "`flask sinks enable %s` and `flask sinks replay --sink %s --since ...`",
                      sink.name, reason, stopped, sink.name, sink.name)
            return DISABLED
        delay = sink.delay_before(attempt + 1)
        if delay is None:
            d.state, d.next_attempt_at = DEAD, None
            session.commit()
            log.error("delivery %s to sink %s dead-lettered after %d attempts: %s",
                      delivery_id, sink.name, attempt, result.error)
            return DEAD
        delay = max(delay, result.retry_after or 0.0)  # Retry-After: never sooner than the receiver asked
        d.state, d.next_attempt_at = FAILED, now + timedelta(seconds=delay)
        session.commit()
    enqueue_delivery(svc.redis, delivery_id, attempt + 1, delay)
    log.info("delivery %s to sink %s: attempt %d failed (%s), next in %.0f s",
             delivery_id, sink.name, attempt, result.error, delay)
    return FAILED


def reconcile_deliveries(svc: Services, stale_seconds: float | None = None, now: datetime | None = None) -> int:
    """Re-enqueue deliveries whose attempt is overdue by ``stale_seconds`` and that nobody is sending (a lost
    job, Redis down when they were recorded). For ``workers/reconcile.py``. Returns how many were enqueued."""
    stale = svc.settings.reconcile_stale_seconds if stale_seconds is None else stale_seconds
    now = now or utcnow()
    before = now - timedelta(seconds=stale)
    with svc.session() as session:
        rows = session.execute(
            select(Delivery.id, Delivery.attempts)
            .where(Delivery.state.in_(ACTIVE), Delivery.next_attempt_at <= before,
                   or_(Delivery.lease_until.is_(None), Delivery.lease_until <= now))
            .order_by(Delivery.next_attempt_at).limit(BATCH)).all()
    return sum(1 for delivery_id, attempts in rows if enqueue_delivery(svc.redis, delivery_id, attempts + 1))


def deliver(delivery_id: str) -> str:
    with runtime.app().app_context():
        return deliver_now(services(), delivery_id)
