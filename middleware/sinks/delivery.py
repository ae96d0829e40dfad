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
claims it and returns its event (``_deliver_http_fast``) and, after a 2xx, an UPDATE that records it
delivered. Anything else (not claimed: missing, not active, sink disabled or gone, early, busy; a failed
send) takes the ORM path, which finds out why and handles it (schedule, Retry-After, 410, dead letter).
"""
from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from functools import lru_cache

from sqlalchemy import bindparam, case, exists, or_, select, update
from sqlalchemy.orm import Session
from sqlalchemy.sql import Update

from config.sinks import DELETION, Sink, Sinks
from middleware.ledger.models import (
    Delivery,
    OutboundEvent,
    SinkState,
    UTCDateTime,
    utcnow,
)
from middleware.metrics import recorders as metrics
from middleware.orders import retry
from middleware.services import Services
from middleware.sinks import http, ratelimit, segment
from middleware.sinks.outbound_events import envelope
from middleware.sinks.states import (
    ACTIVE,
    CANCELLED,
    DEAD,
    DELIVERED,
    DISABLED,
    FAILED,
    disable_sink,
    is_disabled,
)


log = logging.getLogger(__name__)

EARLY_SLACK = timedelta(seconds=1)   # a job this much before its due time still runs
LEASE_MARGIN = 30.0                  # seconds beyond the sink's timeout one attempt owns its deliveries
BATCH = 500
PERMANENT = frozenset({400, 413, 422})  # a segment sink's request that can never succeed as it is: dead at once

Sender = Callable[[list[str]], http.SendResult]  # sends the claimed deliveries (ids, in order)


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def _later(kind: str, due: datetime) -> str:
    """The tag of a job that puts its delivery back until ``due``: unique, so it never collides with the
    running job or another waiting one (the delivery's lease and attempt count keep attempts single)."""
    return f"{kind}{_ms(due)}-{uuid.uuid4().hex[:8]}"


def _lease_free(now):
    return or_(Delivery.lease_until.is_(None), Delivery.lease_until <= now)


def claimable(started, due_before) -> tuple:
    """The claim rules, written once for both paths (the fast path's UPDATE binds its times as parameters):
    a delivery may be claimed when it is active, nobody's lease on it runs at ``started``, and it is due by
    ``due_before``."""
    return (Delivery.state.in_(ACTIVE), _lease_free(started),
            or_(Delivery.next_attempt_at.is_(None), Delivery.next_attempt_at <= due_before))


def deliver_now(svc: Services, delivery_id: str, now: datetime | None = None) -> str:
    """One attempt at a delivery (for a segment sink, with the other due deliveries it batches); returns what
    the delivery is now (or ``early``, ``busy``, ``throttled``).

    ``now`` drives the schedule (tests pass a controllable clock); signatures and ``sentAt`` always carry the
    real time of sending.
    """
    clock = (lambda: now) if now is not None else utcnow
    started = clock()
    if svc.engine.dialect.name == "postgresql":
        outcome = _deliver_http_fast(svc, delivery_id, clock, started)
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
            svc.jobs.delivery(delivery_id, d.attempts + 1, wait, tag=_later("e", d.next_attempt_at))
            return "early"
        if d.lease_until is not None and d.lease_until > started:
            return "busy"
        attempts = d.attempts
        try:
            candidates, sender = (_segment_plan(session, sink, d, started) if sink.type == "segment"
                                  else ([delivery_id], _http_sender(sink, d)))
        except segment.Untranslatable as exc:
            return _dead_unsent(session, d, str(exc), started)
        wait = ratelimit.acquire(svc.redis, sink)  # one token per request, however many deliveries it carries
        if wait > 0:
            svc.jobs.delivery(delivery_id, attempts + 1, wait,
                              tag=_later("t", started + timedelta(seconds=wait)))
            return "throttled"
        claimed = _claim(session, sink, delivery_id, attempts, candidates, started)
        if claimed is None:
            return "busy"
    result = sender(list(claimed))
    return _record(svc, sink, claimed, result, clock(), delivery_id)


# ------------------------------------------------------------------------------------------------ http, fast
# The common case of an http sink in a few statements, each autocommitted: one UPDATE claims the delivery
# (only when it is active, due, not leased, its sink configured as http and not disabled) and returns its
# event; one UPDATE records a success. Anything else (nothing claimed: missing, not active, disabled, early,
# busy...; a failed send) goes through the ORM path below, which finds out why and does what it always did.
_EVENT_COLUMNS = (OutboundEvent.id, OutboundEvent.type, OutboundEvent.namespace, OutboundEvent.player_id,
                  OutboundEvent.environment, OutboundEvent.occurred_at, OutboundEvent.player_seq,
                  OutboundEvent.payload)


@lru_cache(maxsize=16)
def _http_claim(sink_names: tuple[str, ...]) -> Update:
    """The claim for deliveries to these http sinks (the lease of sink ``n`` is the parameter ``lease_n``)."""
    lease = case(*((Delivery.sink == name, bindparam(f"lease_{n}", type_=UTCDateTime()))
                   for n, name in enumerate(sink_names)))
    started = bindparam("started", type_=UTCDateTime())
    return (update(Delivery)
            .where(Delivery.id == bindparam("delivery_id"), Delivery.event_id == OutboundEvent.id,
                   Delivery.sink.in_(sink_names),
                   *claimable(started, bindparam("due_before", type_=UTCDateTime())),
                   ~exists().where(SinkState.name == Delivery.sink, SinkState.disabled_at.is_not(None)))
            .values(attempts=Delivery.attempts + 1, updated_at=started, lease_until=lease)
            .returning(Delivery.sink, Delivery.attempts, Delivery.created_at, *_EVENT_COLUMNS))


_ID, _CLAIMED, _NOW = bindparam("delivery_id"), bindparam("claimed"), bindparam("now", type_=UTCDateTime())
_GIVE_BACK = (update(Delivery).where(Delivery.id == _ID, Delivery.attempts == _CLAIMED)  # not sent after all
              .values(attempts=Delivery.attempts - 1, lease_until=None))
_DELIVERED = (update(Delivery).where(Delivery.id == _ID, Delivery.attempts == _CLAIMED)
              .values(state=DELIVERED, delivered_at=_NOW, next_attempt_at=None, last_error=None, lease_until=None,
                      last_status=bindparam("status"), updated_at=_NOW))


def _http_sinks(sinks: Sinks) -> list[Sink]:
    return [sink for sink in sinks if sink.type == "http"]


def _deliver_http_fast(svc: Services, delivery_id: str, clock: Callable[[], datetime], started: datetime) -> str | None:
    """One attempt at a delivery to an http sink when it can be claimed at once; None when it could not (the
    caller then takes the ORM path, which tells why). Rate limit: a token is taken after the claim, before
    sending; a throttled delivery gives its attempt back and waits, as on the ORM path."""
    sinks = _http_sinks(svc.sinks)
    if not sinks:
        return None
    params = {"delivery_id": delivery_id, "started": started, "due_before": started + EARLY_SLACK,
              **{f"lease_{n}": started + timedelta(seconds=sink.timeout + LEASE_MARGIN)
                 for n, sink in enumerate(sinks)}}
    with svc.engine.connect() as conn:
        conn.execution_options(isolation_level="AUTOCOMMIT")  # each statement is its own transaction
        row = conn.execute(_http_claim(tuple(sink.name for sink in sinks)), params).first()
        if row is None:
            return None
        sink, attempt = svc.sinks.get(row.sink), row.attempts

        def give_back() -> None:  # the attempt was not made: as if never claimed
            conn.execute(_GIVE_BACK, {"delivery_id": delivery_id, "claimed": attempt})
        try:
            wait = ratelimit.acquire(svc.redis, sink)  # one token per request
        except BaseException:
            give_back()
            raise
        if wait > 0:
            give_back()
            svc.jobs.delivery(delivery_id, attempt, wait,
                              tag=_later("t", started + timedelta(seconds=wait)))
            return "throttled"
        result = http.send(sink, row.id, envelope(row))  # the row has the event's columns; webhook-id: its id
        done = clock()
        if result.ok:
            recorded = conn.execute(_DELIVERED, {"delivery_id": delivery_id, "claimed": attempt, "now": done,
                                                 "status": result.status}).rowcount
            if recorded:
                metrics.delivered(sink.name, row.created_at, done)  # kb_sink_delivery_seconds
                return DELIVERED
    # a failure (or a success for a delivery claimed again meanwhile, or removed): recorded as always
    return _record(svc, sink, {delivery_id: attempt}, result, done, delivery_id)


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


def _claim(session: Session, sink: Sink, lead_id: str, lead_attempts: int, ids: list[str],
           started: datetime) -> dict[str, int] | None:
    """Lease ``ids`` for one attempt, in one UPDATE: those still active, due and not leased (the lead only at
    the attempt it read). Returns each claimed delivery's attempt number, or None (nothing claimed) when the
    lead itself was taken meanwhile."""
    rows = session.execute(
        update(Delivery)
        .where(Delivery.id.in_(ids), *claimable(started, started + EARLY_SLACK),
               or_(Delivery.id != lead_id, Delivery.attempts == lead_attempts))
        .values(attempts=Delivery.attempts + 1, updated_at=started,
                lease_until=started + timedelta(seconds=sink.timeout + LEASE_MARGIN))
        .returning(Delivery.id, Delivery.attempts)
        .execution_options(synchronize_session=False)).all()
    claimed = dict(rows)
    if lead_id not in claimed:
        session.rollback()
        return None
    session.commit()
    return {delivery_id: claimed[delivery_id] for delivery_id in ids if delivery_id in claimed}  # in batch order


def _dead_unsent(session: Session, d: Delivery, reason: str, now: datetime) -> str:
    d.state, d.next_attempt_at, d.updated_at, d.last_error = DEAD, None, now, reason
    session.commit()
    log.error("delivery %s to sink %s dead-lettered unsent: %s", d.id, d.sink, reason)
    return DEAD


def _record(svc: Services, sink: Sink, claimed: dict[str, int], result: http.SendResult, now: datetime,
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
            .where(Delivery.state.in_(ACTIVE), Delivery.next_attempt_at <= before, _lease_free(now))
            .order_by(Delivery.next_attempt_at).limit(BATCH)).all()
    return sum(1 for delivery_id, attempts in rows if svc.jobs.delivery(delivery_id, attempts + 1))
