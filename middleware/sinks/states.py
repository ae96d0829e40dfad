"""Delivery states, disabling and enabling a sink, and replaying what was not delivered.

States: ``pending`` (waiting for its next attempt) -> ``delivered``; ``failed`` (an attempt failed, the next
one is scheduled) -> ... -> ``dead`` (the sink's last attempt failed: dead-lettered); ``disabled`` (the sink
was disabled by a 410 Gone). ``dead`` and ``disabled`` deliveries wait for an operator's replay.
``cancelled``: the player was erased (GDPR) before it was delivered; it is never sent.
"""
from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from middleware.ledger.models import Delivery, OutboundEvent, SinkState, utcnow

PENDING, FAILED, DELIVERED, DEAD, DISABLED = "pending", "failed", "delivered", "dead", "disabled"
CANCELLED = "cancelled"
ACTIVE = (PENDING, FAILED)           # an attempt is still to come
REPLAYABLE = (DEAD, DISABLED, DELIVERED)
STATES = (PENDING, FAILED, DELIVERED, DEAD, DISABLED, CANCELLED)


class ReplayError(Exception):
    """A replay that cannot be done (unknown delivery, still in flight, sink disabled...): the message says why."""


def disabled_names(session: Session) -> set[str]:
    return set(session.scalars(select(SinkState.name).where(SinkState.disabled_at.is_not(None))))


def is_disabled(session: Session, name: str) -> bool:
    state = session.get(SinkState, name)
    return state is not None and state.disabled_at is not None


def disable_sink(session: Session, name: str, reason: str, now: datetime | None = None) -> int:
    """Disable a sink (its endpoint answered 410 Gone): its waiting deliveries become ``disabled``.
    Returns how many deliveries that stopped. The caller commits."""
    now = now or utcnow()
    state = session.get(SinkState, name)
    if state is None:
        state = SinkState(name=name)
        session.add(state)
    state.disabled_at, state.reason, state.updated_at = now, reason, now
    return session.execute(update(Delivery).where(Delivery.sink == name, Delivery.state.in_(ACTIVE))
                           .values(state=DISABLED, next_attempt_at=None, updated_at=now,
                                   last_error=f"sink disabled: {reason}")).rowcount


def enable_sink(session: Session, name: str, now: datetime | None = None) -> bool:
    """Enable a disabled sink again (its deliveries stay ``disabled`` until replayed). The caller commits."""
    state = session.get(SinkState, name)
    if state is None or state.disabled_at is None:
        return False
    state.disabled_at, state.reason, state.updated_at = None, None, now or utcnow()
    return True


def _restart(delivery: Delivery, now: datetime) -> None:
    delivery.state, delivery.attempts, delivery.next_attempt_at = PENDING, 0, now
    delivery.lease_until, delivery.updated_at = None, now


def replay_delivery(session: Session, delivery_id: str, now: datetime | None = None) -> Delivery:
    """Send one delivery again from the start of its sink's schedule. The caller commits, then enqueues."""
    now = now or utcnow()
    delivery = session.get(Delivery, delivery_id)
    if delivery is None:
        raise ReplayError(f"no delivery {delivery_id}")
    if delivery.state in ACTIVE:
        raise ReplayError(f"delivery {delivery_id} is {delivery.state}: its next attempt is already scheduled")
    if delivery.state == CANCELLED:
        raise ReplayError(f"delivery {delivery_id} was cancelled: its player was erased")
    if is_disabled(session, delivery.sink):
        raise ReplayError(f"sink {delivery.sink} is disabled: enable it first (flask sinks enable {delivery.sink})")
    _restart(delivery, now)
    return delivery


def replay_since(session: Session, sink: str, since: datetime, now: datetime | None = None,
                 namespaces: Sequence[str] | None = None) -> list[str]:
    """Every dead-lettered (or disabled) delivery of ``sink`` recorded since ``since`` (of ``namespaces``'
    events only, when given), sent again from the start of the schedule; returns their ids. The caller
    commits, then enqueues."""
    now = now or utcnow()
    if is_disabled(session, sink):
        raise ReplayError(f"sink {sink} is disabled: enable it first (flask sinks enable {sink})")
    stmt = select(Delivery).where(Delivery.sink == sink, Delivery.state.in_((DEAD, DISABLED)),
                                  Delivery.created_at >= since)
    if namespaces is not None:
        stmt = stmt.where(Delivery.event_id.in_(select(OutboundEvent.id).where(
            OutboundEvent.namespace.in_(namespaces))))
    rows = session.scalars(stmt.order_by(Delivery.created_at, Delivery.id)).all()
    for delivery in rows:
        _restart(delivery, now)
    return [delivery.id for delivery in rows]
