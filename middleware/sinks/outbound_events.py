"""Recording outbound events: one row per event, one delivery per matching sink, a per-player sequence."""
from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from datetime import datetime, timedelta, timezone

from redis.exceptions import RedisError
from sqlalchemy import select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from config.sinks import Sinks
from middleware.ledger.models import Delivery, OutboundEvent, PlayerSequence, new_id, utcnow

from middleware.orders import retry
from middleware.orders.jobs import Jobs
from middleware.services import services
from middleware.sinks.states import DISABLED, PENDING, disabled_names

log = logging.getLogger(__name__)
_UPSERT = {"postgresql": postgresql.insert, "sqlite": sqlite.insert}  # the backends with INSERT .. ON CONFLICT


def next_player_seq(session: Session, namespace: str, player_id: str) -> int:
    """The player's next sequence number: 1, 2, 3... per (namespace, player), taken in the caller's
    transaction (the counter's row stays locked until it commits, so numbers follow commit order)."""
    insert = _UPSERT.get(session.get_bind().dialect.name)
    if insert is not None:
        stmt = (insert(PlayerSequence).values(namespace=namespace, player_id=player_id, last_seq=1)
                .on_conflict_do_update(index_elements=["namespace", "player_id"],
                                       set_={"last_seq": PlayerSequence.last_seq + 1})
                .returning(PlayerSequence.last_seq))
        return session.execute(stmt).scalar_one()
    row = session.execute(select(PlayerSequence).where(PlayerSequence.namespace == namespace,
                                                       PlayerSequence.player_id == player_id)
                          .with_for_update()).scalar_one_or_none()
    if row is None:
        session.add(PlayerSequence(namespace=namespace, player_id=player_id, last_seq=1))
        session.flush()
        return 1
    session.execute(update(PlayerSequence).where(PlayerSequence.namespace == namespace,
                                                 PlayerSequence.player_id == player_id)
                    .values(last_seq=PlayerSequence.last_seq + 1))
    return row.last_seq + 1


def emit(session: Session, type: str, namespace: str, player_id: str | None, environment: str,
         occurred_at: datetime, payload: dict, sinks: Sinks | None = None, *, event_id: str | None = None,
         fulfilment_id: str | None = None) -> list[str]:
    """Record an event for every sink that wants it (type and environment filters); returns the new
    deliveries' ids, to give ``enqueue_new`` after the caller commits. No matching sink: nothing is stored.

    ``event_id`` makes the event's id (the ``webhook-id`` receivers dedupe on) stable: a second emit with
    the same id records nothing (a Kraty webhook handled twice is passed on once).

    ``sinks`` defaults to the app's (``services().sinks``). A sink disabled after a 410 gets its delivery
    in the ``disabled`` state, sent when the sink is enabled again and the delivery replayed.
    """
    if sinks is None:
        sinks = services().sinks
    matching = sinks.matching(type, environment)
    if not matching:
        return []
    if occurred_at.tzinfo is None:
        raise ValueError("occurred_at must be timezone-aware")
    if event_id is not None and session.get(OutboundEvent, event_id) is not None:
        return []
    now = utcnow()
    event = OutboundEvent(id=event_id or f"evt_{new_id()}", type=type, namespace=namespace, player_id=player_id,
                          environment=environment, occurred_at=occurred_at, payload=payload, created_at=now,
                          fulfilment_id=fulfilment_id,
                          player_seq=next_player_seq(session, namespace, player_id) if player_id else None)
    session.add(event)
    disabled = disabled_names(session)
    ids = []
    for sink in matching:
        off = sink.name in disabled
        delivery = Delivery(id=new_id(), event_id=event.id, sink=sink.name, state=DISABLED if off else PENDING,
                            attempts=0, created_at=now, updated_at=now,
                            next_attempt_at=None if off else now + timedelta(seconds=retry.for_sink(sink).delay(0)),
                            last_error=f"sink {sink.name} is disabled" if off else None)
        session.add(delivery)
        if not off:
            ids.append(delivery.id)
    session.flush()
    return ids


def enqueue_new(jobs: Jobs, delivery_ids: Iterable[str]) -> int:
    """Enqueue the first attempt of new deliveries (after the commit; a sink whose schedule starts with a
    delay has its job put back until then). Redis down: logged, and the reconciler enqueues them later;
    the deliveries are already committed."""
    enqueued = 0
    try:
        for delivery_id in delivery_ids:
            jobs.delivery(delivery_id, 1)
            enqueued += 1
    except RedisError as exc:
        log.warning("sinks: could not enqueue deliveries (%s); the reconciler will", exc.__class__.__name__)
    return enqueued


def _iso(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def envelope(event: OutboundEvent) -> str:
    """The JSON body every sink receives for ``event`` (the same bytes on every attempt)."""
    return json.dumps({
        "id": event.id,
        "type": event.type,
        "timestamp": _iso(event.occurred_at),
        "namespace": event.namespace,
        "environment": event.environment,
        "playerId": event.player_id,
        "playerSequence": event.player_seq,
        "data": event.payload,
    }, separators=(",", ":"), ensure_ascii=False)
