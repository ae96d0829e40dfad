"""The delivery state machine: send events to a sink, at least once, on the sink's retry schedule.

``deliver_now(svc, delivery_id)`` makes one attempt (its job: ``workers/deliver.py``): only 2xx is success;
anything else (a timeout, no answer, another status) schedules the next attempt after the sink's delay for it
(``middleware/orders/retry.py``: ``for_sink``), or later when the answer had a ``Retry-After``; 410 Gone disables the sink; a failure of the last attempt dead-letters the delivery. A
delivery over its sink's rate limit is put back until the limit allows it, without counting an attempt.
Each delivery is its own job, so one player's (or one event's) failures never hold up the others.

An ``http`` sink gets one signed POST per delivery. A ``segment`` sink's job takes its delivery and up to
``batch_size - 1`` other due deliveries of the sink (oldest first) into one ``/v1/batch`` request, claimed
together in one UPDATE with the same lease; every claimed delivery then follows the answer on its own
schedule. Segment's 400 (a malformed batch) dead-letters at once. ``player.deleted`` goes alone, as a
deletion regulation. The rate limit counts requests, not events.

On PostgreSQL an http delivery that can be sent at once takes two autocommitted statements: an UPDATE that
claims it and returns its event (``fast_path.py``) and, after a 2xx, an UPDATE that records it
delivered. Anything else (not claimed: missing, not active, sink disabled or gone, early, busy; a failed
send) takes the ORM path, which finds out why and handles it (schedule, Retry-After, 410, dead letter).
The claim rules, written once for both paths, are in ``claim.py``; what an attempt leaves, in ``outcome.py``.
"""
from __future__ import annotations

import json
import logging
from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from config.sinks import DELETION, Sink
from middleware.ledger.models import Delivery, OutboundEvent, utcnow
from middleware.services import Services
from middleware.sinks import http, ratelimit, segment
from middleware.sinks.claim import EARLY_SLACK, claim, claimable, lease_free
from middleware.sinks.fast_path import deliver_http_fast
from middleware.sinks.outbound_events import envelope
from middleware.sinks.outcome import dead_unsent, later, record
from middleware.sinks.states import ACTIVE, DISABLED, DEAD, is_disabled

log = logging.getLogger(__name__)

BATCH = 500

Sender = Callable[[list[str]], http.SendResult]  # sends the claimed deliveries (ids, in order)


def deliver_now(svc: Services, delivery_id: str, now: datetime | None = None) -> str:
    """One attempt at a delivery (for a segment sink, with the other due deliveries it batches); returns what
    the delivery is now (or ``early``, ``busy``, ``throttled``).

    ``now`` drives the schedule (tests pass a controllable clock); signatures and ``sentAt`` always carry the
    real time of sending.
    """
    clock = (lambda: now) if now is not None else utcnow
    started = clock()
    if svc.engine.dialect.name == "postgresql":
        outcome = deliver_http_fast(svc, delivery_id, clock, started)
        if outcome is not None:
            return outcome
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
            svc.jobs.delivery(delivery_id, d.attempts + 1, wait, tag=later("e", d.next_attempt_at))
            return "early"
        if d.lease_until is not None and d.lease_until > started:
            return "busy"
        attempts = d.attempts
        try:
            candidates, sender = (_segment_plan(session, sink, d, started) if sink.type == "segment"
                                  else ([delivery_id], _http_sender(sink, d)))
        except segment.Untranslatable as exc:
            return dead_unsent(session, d, str(exc), started)
        wait = ratelimit.acquire(svc.redis, sink)  # one token per request, however many deliveries it carries
        if wait > 0:
            svc.jobs.delivery(delivery_id, attempts + 1, wait, tag=later("t", started + timedelta(seconds=wait)))
            return "throttled"
        claimed = claim(session, sink, delivery_id, attempts, candidates, started)
        if claimed is None:
            return "busy"
    result = sender(list(claimed))
    return record(svc, sink, claimed, result, clock(), delivery_id)


# ------------------------------------------------------------------------------------------------ ORM path
def _http_sender(sink: Sink, d: Delivery) -> Sender:
    msg_id, body = d.event_id, envelope(d.event)  # webhook-id: the event's id
    return lambda ids: http.send(sink, msg_id, body)


def _segment_plan(session: Session, sink: Sink, d: Delivery, started: datetime) -> tuple[list[str], Sender]:
    """The deliveries one segment request carries (``d`` first) and how to send the claimed ones.
    Raises ``segment.Untranslatable`` when ``d`` itself can never be sent."""
    env = json.loads(envelope(d.event))
    if d.event.type == DELETION:
        subject = segment.deletion_subject(env)
        if not sink.regulations_token:
            raise segment.Untranslatable(f"sink {sink.name} has no regulations_token_env: {DELETION} not forwarded")
        return [d.id], lambda ids: segment.send_regulation(sink, subject)
    planned = {d.id: segment.messages(env)}
    batch = segment.Batch()
    batch.add(planned[d.id])
    if sink.batch_size > 1:
        others = session.execute(
            select(Delivery.id, OutboundEvent).join(OutboundEvent, Delivery.event_id == OutboundEvent.id)
            .where(Delivery.sink == sink.name, Delivery.id != d.id, *claimable(started, started + EARLY_SLACK),
                   OutboundEvent.type != DELETION)
            .order_by(Delivery.next_attempt_at, Delivery.id).limit(sink.batch_size - 1)).all()
        for other_id, event in others:
            try:
                messages = segment.messages(json.loads(envelope(event)))
            except segment.Untranslatable:
                continue  # its own job dead-letters it
            if not batch.add(messages):
                break  # the request is full: the rest wait for the next one
            planned[other_id] = messages

    def send(ids: list[str]) -> http.SendResult:
        return segment.send_batch(sink, [message for delivery_id in ids for message in planned[delivery_id]])
    return list(planned), send


def reconcile_deliveries(svc: Services, stale_seconds: float | None = None, now: datetime | None = None) -> int:
    """Re-enqueue deliveries whose attempt is overdue by ``stale_seconds`` and that nobody is sending (a lost
    job, Redis down when they were recorded). For the reconciler job (``workers/reconcile.py``). Returns how many
    were enqueued."""
    stale = svc.settings.reconcile_stale_seconds if stale_seconds is None else stale_seconds
    now = now or utcnow()
    before = now - timedelta(seconds=stale)
    with svc.session() as session:
        rows = session.execute(
            select(Delivery.id, Delivery.attempts)
            .where(Delivery.state.in_(ACTIVE), Delivery.next_attempt_at <= before, lease_free(now))
            .order_by(Delivery.next_attempt_at).limit(BATCH)).all()
    return sum(1 for delivery_id, attempts in rows if svc.jobs.delivery(delivery_id, attempts + 1))
