"""What ``flask sinks``, ``/v1/sinks`` and the console's sinks page share: the sinks' overview, replaying
deliveries (one, or everything dead-lettered for a sink since a time; each starts its sink's schedule again)
and enabling a sink; each operator's action is audited in its own change's transaction."""
from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime

from redis.exceptions import RedisError
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from middleware.ledger.models import Delivery, OutboundEvent, SinkState, utcnow
from middleware.ops.audit import audit_row
from middleware.ops.base import Actor
from middleware.services import Services
from middleware.sinks.states import ReplayError, enable_sink, replay_delivery, replay_since


log = logging.getLogger(__name__)


class UnknownTarget(ReplayError):
    """No such delivery (or sink)."""


def replay(svc: Services, actor: Actor, reason: str, *, delivery_id: str | None = None, sink: str | None = None,
           since: datetime | None = None, now: datetime | None = None,
           progress: Callable[[list[str]], Iterable[str]] | None = None) -> list[str]:
    """Replay ``delivery_id`` (of ``sink``, when given), or every dead-lettered or disabled delivery of ``sink``
    recorded at or after ``since``; committed with its audit row (``sink.replay`` / ``sink.replay_since``, by
    ``actor`` for ``reason``), then enqueued (``progress`` wraps the enqueueing, for a progress bar). Only
    deliveries of the events of ``actor``'s games (a key limited to some games; another game's delivery is
    unknown to it). Raises ``ReplayError`` saying why not."""
    now = now or utcnow()
    namespaces = actor.namespaces
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
        after = {"replayed": len(ids), "deliveryIds": ids}
        if delivery_id is not None:
            session.add(audit_row(actor, "sink.replay", ("delivery", delivery_id), reason, None, after))
        else:
            session.add(audit_row(actor, "sink.replay_since", ("sink", sink), reason, None,
                                  {**after, "since": since.isoformat()}))
        session.commit()
    try:
        for replayed in (progress(ids) if progress and ids else ids):
            svc.jobs.delivery(replayed, 1, tag=f"r{int(now.timestamp() * 1000)}")
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


def enable(svc: Services, actor: Actor, name: str, reason: str) -> bool:
    """Enable a sink disabled after a 410, audited (``sink.enable``) in the same transaction; False if it
    was not disabled (nothing changed, nothing audited)."""
    with svc.session() as session:
        changed = enable_sink(session, name)
        if changed:
            session.add(audit_row(actor, "sink.enable", ("sink", name), reason, None, {"enabled": True}))
        session.commit()
    return changed
