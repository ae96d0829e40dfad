"""Read-only lists the console shows beside what ``middleware.ops`` answers: stuck orders, sinks, dead letters."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from middleware import ops
from middleware.ledger import states
from middleware.ledger.models import Delivery, Fulfilment, OutboundEvent
from middleware.sinks.states import DEAD, DISABLED


def stuck_orders(session: Session, actor: ops.Actor, before: datetime, namespace: str | None = None,
                 limit: int = 100) -> list[dict]:
    """Active orders (RECEIVED, FULFILLING, REVOKING) whose state has not changed since ``before``, longest
    stuck first; each summary also says since when (``stateChangedAt``)."""
    f = Fulfilment
    stmt = select(f).where(f.state.in_(states.ACTIVE), f.state_changed_at < ops.utc(before))
    if namespace is not None:
        stmt = stmt.where(f.namespace == namespace)
    if actor.namespaces is not None:
        stmt = stmt.where(f.namespace.in_(actor.namespaces))
    rows = session.scalars(stmt.order_by(f.state_changed_at, f.id).limit(limit))
    return [{**ops.summary(row), "stateChangedAt": ops.iso(row.state_changed_at)} for row in rows]


def dead_letters(session: Session, actor: ops.Actor, sink: str, limit: int = 50) -> list[dict]:
    """A sink's dead-lettered (and disabled) deliveries, newest first: what a replay would send again. A key
    limited to some games sees only theirs."""
    stmt = (select(Delivery, OutboundEvent).join(OutboundEvent, Delivery.event_id == OutboundEvent.id)
            .where(Delivery.sink == sink, Delivery.state.in_((DEAD, DISABLED))))
    if actor.namespaces is not None:
        stmt = stmt.where(OutboundEvent.namespace.in_(actor.namespaces))
    rows = session.execute(stmt.order_by(Delivery.created_at.desc(), Delivery.id.desc()).limit(limit))
    return [{"id": d.id, "state": d.state, "attempts": d.attempts, "lastStatus": d.last_status,
             "lastError": d.last_error, "createdAt": ops.iso(d.created_at), "eventType": e.type,
             "playerId": e.player_id, "namespace": e.namespace, "fulfilmentId": e.fulfilment_id}
            for d, e in rows]
