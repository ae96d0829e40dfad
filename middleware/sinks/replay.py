"""Replaying deliveries (one, or everything dead-lettered for a sink since a time): what ``flask sinks
replay`` and ``POST /v1/sinks/...`` share. Each replayed delivery starts its sink's schedule again."""
from __future__ import annotations

from datetime import datetime

from middleware.ledger.models import Delivery, utcnow
from middleware.services import Services

from .states import ReplayError, replay_delivery, replay_since


class UnknownTarget(ReplayError):
    """No such delivery (or sink)."""


def replay(svc: Services, *, delivery_id: str | None = None, sink: str | None = None,
           since: datetime | None = None, now: datetime | None = None) -> list[str]:
    """Replay ``delivery_id`` (of ``sink``, when given), or every dead-lettered or disabled delivery of ``sink``
    recorded at or after ``since``; committed and enqueued. Raises ``ReplayError`` saying why not."""
    from workers.queues import enqueue_delivery  # the one module that enqueues
    now = now or utcnow()
    if sink is not None and svc.sinks.get(sink) is None:
        raise UnknownTarget(f"no sink {sink} is configured")
    with svc.session() as session:
        if delivery_id is not None:
            found = session.get(Delivery, delivery_id)
            if found is None or (sink is not None and found.sink != sink):
                raise UnknownTarget(f"no delivery {delivery_id}" + (f" for sink {sink}" if sink else ""))
            ids = [replay_delivery(session, delivery_id, now).id]
        else:
            ids = replay_since(session, sink, since, now)
        session.commit()
    for replayed in ids:
        enqueue_delivery(svc.redis, replayed, 1, tag=f"r{int(now.timestamp() * 1000)}")
    return ids
