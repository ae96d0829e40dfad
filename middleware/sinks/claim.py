"""The claim of sink deliveries, written once: the rules (``claimable``) and the two statements that apply them,
the ORM path's (``claim``: a lead delivery and the others one segment request carries) and the PostgreSQL fast
path's (``http_claim``: one http delivery, returning its event). A claim takes a lease of the sink's timeout
plus ``LEASE_MARGIN`` and counts the attempt."""
from __future__ import annotations

from datetime import datetime, timedelta
from functools import lru_cache

from sqlalchemy import bindparam, case, exists, or_, update
from sqlalchemy.orm import Session
from sqlalchemy.sql import Update

from config.sinks import Sink
from middleware.ledger.models import Delivery, OutboundEvent, SinkState, UTCDateTime
from middleware.sinks.states import ACTIVE

EARLY_SLACK = timedelta(seconds=1)   # a job this much before its due time still runs
LEASE_MARGIN = 30.0                  # seconds beyond the sink's timeout one attempt owns its deliveries
EVENT_COLUMNS = (OutboundEvent.id, OutboundEvent.type, OutboundEvent.namespace, OutboundEvent.player_id,
                 OutboundEvent.environment, OutboundEvent.occurred_at, OutboundEvent.player_seq,
                 OutboundEvent.payload)


def lease_free(now):
    return or_(Delivery.lease_until.is_(None), Delivery.lease_until <= now)


def claimable(started, due_before) -> tuple:
    """The claim rules, written once for both paths (the fast path's UPDATE binds its times as parameters):
    a delivery may be claimed when it is active, nobody's lease on it runs at ``started``, and it is due by
    ``due_before``."""
    return (Delivery.state.in_(ACTIVE), lease_free(started),
            or_(Delivery.next_attempt_at.is_(None), Delivery.next_attempt_at <= due_before))


def claim(session: Session, sink: Sink, lead_id: str, lead_attempts: int, ids: list[str],
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


@lru_cache(maxsize=16)
def http_claim(sink_names: tuple[str, ...]) -> Update:
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
            .returning(Delivery.sink, Delivery.attempts, Delivery.created_at, *EVENT_COLUMNS))
