"""What ``flask sinks``, ``/v1/sinks`` and the console's sinks page share: the sinks' overview, replaying
deliveries (one, or everything dead-lettered for a sink since a time; each starts its sink's schedule again)
and the audit entry of an operator's sink action."""
from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime

from redis.exceptions import RedisError
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from middleware.ledger.models import AuditEntry, Delivery, OutboundEvent, SinkState, utcnow
from middleware.services import Services

from middleware.sinks.states import ReplayError, replay_delivery, replay_since


log = logging.getLogger(__name__)


class UnknownTarget(ReplayError):
    """No such delivery (or sink)."""


def replay(svc: Services, *, delivery_id: str | None = None, sink: str | None = None,
           since: datetime | None = None, now: datetime | None = None,
           progress: Callable[[list[str]], Iterable[str]] | None = None,
           namespaces: Sequence[str] | None = None) -> list[str]:
    """Replay ``delivery_id`` (of ``sink``, when given), or every dead-lettered or disabled delivery of ``sink``
    recorded at or after ``since``; committed and enqueued (``progress`` wraps the enqueueing, for a progress
    bar). ``namespaces``: only deliveries of these games' events (a key limited to some games; another game's
    delivery is unknown to it). Raises ``ReplayError`` saying why not."""
    from workers.queues import enqueue_delivery  # the one module that enqueues
    now = now or utcnow()
    if sink is not None and svc.sinks.get(sink) is None:
        raise UnknownTarget(f"no sink {sink} is configured")
    with svc.session() as session:
        if delivery_id is not None:
            found = session.get(Delivery, delivery_id)
            if found is None or (sink is not None and found.sink != sink) or not _of(session, found, namespaces):
                raise UnknownTarget(f"no delivery {delivery_id}" + (f" for sink {sink}" if sink else ""))
            ids = [replay_delivery(session, delivery_id, now).id]
        else:
            ids = replay_since(session, sink, since, now, namespaces)
        session.commit()
    try:
        for replayed in (progress(ids) if progress and ids else ids):
            enqueue_delivery(svc.redis, replayed, 1, tag=f"r{int(now.timestamp() * 1000)}")
    except RedisError as exc:  # committed as due now: the reconciler enqueues what is left
        log.warning("sinks: replayed deliveries not enqueued (%s); the reconciler will", exc.__class__.__name__)
    return ids


def _of(session: Session, delivery: Delivery, namespaces: Sequence[str] | None) -> bool:
    """The delivery's event is of one of ``namespaces`` (None: any game)."""
    return namespaces is None or session.get(OutboundEvent, delivery.event_id).namespace in namespaces


def overview(session: Session, configured, namespaces: Sequence[str] | None = None) -> list[dict]:
    """The configured sinks: enabled or not (and why), and their deliveries by state (of ``namespaces``'
    events only, when given)."""
    counts: dict[str, dict[str, int]] = {}
    stmt = select(Delivery.sink, Delivery.state, func.count()).group_by(Delivery.sink, Delivery.state)
    if namespaces is not None:
        stmt = stmt.join(OutboundEvent, Delivery.event_id == OutboundEvent.id).where(
            OutboundEvent.namespace.in_(namespaces))
    for sink, state, count in session.execute(stmt):
        counts.setdefault(sink, {})[state] = count
    disabled = {s.name: s.reason for s in session.scalars(select(SinkState).where(SinkState.disabled_at.is_not(None)))}
    return [{"name": s.name, "type": s.type, "events": list(s.events), "environments": sorted(s.environments),
             "enabled": s.name not in disabled, "disabledReason": disabled.get(s.name),
             "deliveries": counts.get(s.name, {})} for s in configured]


def audit(svc: Services, actor: str, role: str | None, action: str, target_type: str, target_id: str,
          reason: str, after: dict, request_id: str | None = None) -> None:
    """Record an operator's sink action (``sink.replay``, ``sink.replay_since``, ``sink.enable``)."""
    with svc.session() as session:
        session.add(AuditEntry(at=utcnow(), actor=actor, role=role, action=action, target_type=target_type,
                               target_id=target_id, reason=reason, after=after, request_id=request_id))
        session.commit()
