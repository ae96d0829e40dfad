"""Ledger reads and writes that every entry point shares: record an order, move its state, lease it."""
from __future__ import annotations

import time
from datetime import datetime, timedelta
from typing import NamedTuple

from sqlalchemy import BigInteger, String, Text, and_, bindparam, cast, delete, func, insert, literal, or_, select, true, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.orm import Session, joinedload, object_session, selectinload

from middleware.ledger import states
from middleware.ledger.prepared import driver_execute
from middleware.ledger.models import Fulfilment, HistoryEntry, InboundEvent, OutboxEntry, utcnow


def _append_history(fulfilment: Fulfilment, entry: HistoryEntry) -> None:
    """Add a history entry without loading the order's whole history (append-only, never read here)."""
    session = object_session(fulfilment)
    if session is None or fulfilment.id is None:  # a new order: its history goes in with it
        fulfilment.history.append(entry)
    else:
        entry.fulfilment_id = fulfilment.id
        session.add(entry)


def set_state(fulfilment: Fulfilment, to_state: str, actor: str, detail: dict | None = None,
              reason: str | None = None, now: datetime | None = None) -> None:
    """Move the state machine one legal step and append it to the history."""
    states.check_transition(fulfilment.state, to_state)
    now = now or utcnow()
    _append_history(fulfilment, HistoryEntry(at=now, actor=actor, from_state=fulfilment.state, to_state=to_state,
                                             detail=detail))
    fulfilment.state = to_state
    fulfilment.reason = reason
    fulfilment.updated_at = fulfilment.state_changed_at = now


def note(fulfilment: Fulfilment, actor: str, detail: dict, now: datetime | None = None) -> None:
    """A history entry that is not a transition (an attempt's outcome, a duplicate request...)."""
    now = now or utcnow()
    _append_history(fulfilment, HistoryEntry(at=now, actor=actor, from_state=fulfilment.state,
                                             to_state=fulfilment.state, detail=detail))
    fulfilment.updated_at = now


def load(session: Session, fulfilment_id: str, *, history: bool = False) -> Fulfilment | None:
    options = [joinedload(Fulfilment.items)]
    if history:
        options.append(selectinload(Fulfilment.history))
    return session.get(Fulfilment, fulfilment_id, options=options)


def find(session: Session, namespace: str, source: str, transaction_id: str,
         storefront: str | None = None) -> Fulfilment | None:
    """The order of a transaction; ``storefront``: the storefront's own (None: whichever, for a store's
    orders, whose storefront is always "")."""
    stmt = select(Fulfilment).where(Fulfilment.namespace == namespace, Fulfilment.source == source,
                                    Fulfilment.transaction_id == transaction_id)
    if storefront is not None:
        stmt = stmt.where(Fulfilment.storefront == storefront)
    return session.scalars(stmt.options(selectinload(Fulfilment.items))).one_or_none()


def record_event(session: Session, *, source: str, provider_event_id: str, namespace: str | None,
                 content_type: str | None, raw_body: bytes, outcome: str = "recorded",
                 detail: str | None = None, fulfilment_id: str | None = None) -> bool:
    """Insert an inbound event unless (source, provider event id) is already there. True if new."""
    event = InboundEvent(source=source, provider_event_id=provider_event_id, namespace=namespace,
                         content_type=(content_type or "")[:128] or None, raw_body=raw_body, outcome=outcome,
                         detail=detail, fulfilment_id=fulfilment_id)
    try:
        with session.begin_nested():
            session.add(event)
    except IntegrityError:
        return False
    return True


def dialect_insert(session: Session):
    """The backend's INSERT construct (both know ON CONFLICT DO NOTHING)."""
    return postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert


OUTBOX_CHANNEL = "kb_outbox"   # NOTIFY'd with outbox rows (workers/relay.py LISTENs)
# A process NOTIFYs at most once per NOTIFY_EVERY seconds: a NOTIFY costs every commit that sends one a turn on
# PostgreSQL's one notification-queue lock (a third of the ingest statement's time). A woken relay keeps draining
# every NOTIFY_EVERY for a while (workers/relay.py LINGER), so the rows committed without a NOTIFY of their own
# are moved as fast as the one that woke it.
NOTIFY_EVERY = 0.05
# every column an ingest may set (the prebuilt statements bind them all)
EVENT_DEFAULTS = dict(namespace=None, content_type=None, outcome="recorded", detail=None, event_type=None,
                      player_id=None, fulfilment_id=None, attempts=0)
_EVENT_COLUMNS = ("source", "provider_event_id", "received_at", "raw_body", *EVENT_DEFAULTS)


def _event_insert(make_insert):
    table = InboundEvent.__table__
    return (make_insert(table).values({name: bindparam(name, type_=table.c[name].type) for name in _EVENT_COLUMNS})
            .on_conflict_do_nothing(index_elements=["source", "provider_event_id"]).returning(table.c.id))


def _event_and_outbox(notify: bool):
    """One statement: the event (ON CONFLICT DO NOTHING), its outbox row when it is new, and perhaps a NOTIFY."""
    outbox = OutboxEntry.__table__
    event = _event_insert(postgresql.insert).cte("event")
    row = select(literal("event"), cast(event.c.id, String), bindparam("received_at", type_=outbox.c.created_at.type),
                 bindparam("outbox_trace", type_=Text()))
    queued = (postgresql.insert(outbox).from_select(["job", "ref", "created_at", "trace"], row)
              .returning(outbox.c.id).cte("queued"))
    columns = (event.c.id, func.pg_notify(OUTBOX_CHANNEL, "")) if notify else (event.c.id,)
    return select(*columns).select_from(event.join(queued, true()))


_EVENT_INSERT = {"postgresql": _event_insert(postgresql.insert), "sqlite": _event_insert(sqlite.insert)}


class _DriverStatement:
    """A prebuilt statement compiled once for psycopg (its SQL text and its constant parameters): the hot path
    runs it on the pooled connection's psycopg connection, prepared server-side, without SQLAlchemy's
    per-execution work (cache lookup, bind processing, result wrapping) — a third of a webhook's CPU."""

    def __init__(self, statement):
        self.statement, self.compiled = statement, None

    def text_and_constants(self, dialect) -> tuple[str, dict]:
        if self.compiled is None:
            compiled = self.statement.compile(dialect=dialect)
            variables = {name for name in compiled.binds if name not in _EVENT_COLUMNS + ("outbox_trace",)}
            self.compiled = compiled.string, {name: compiled.binds[name].value for name in variables}
        return self.compiled


# (queued, notify) -> the statement
_DRIVER = {(False, False): _DriverStatement(_EVENT_INSERT["postgresql"]),
           (True, False): _DriverStatement(_event_and_outbox(notify=False)),
           (True, True): _DriverStatement(_event_and_outbox(notify=True))}


class _Notifier:
    """When this process last sent a NOTIFY (``NOTIFY_EVERY``)."""
    last = float("-inf")

    @classmethod
    def due(cls) -> bool:
        now = time.monotonic()
        if now - cls.last < NOTIFY_EVERY:
            return False
        cls.last = now
        return True


def insert_event(engine: Engine, *, trace: str | None = None, **values) -> int | None:
    """Record an inbound event, committed on return: its id, or None if (source, provider event id) is already
    there. A ``pending`` event's job goes into the outbox in the same commit (``trace``: the request's trace
    context for it, JSON) and, on PostgreSQL, a NOTIFY on ``OUTBOX_CHANNEL`` (``NOTIFY_EVERY``) wakes the relay. On PostgreSQL it is
    one prebuilt statement, autocommitted, on a pooled connection (the hot path of every store webhook)."""
    values = {**EVENT_DEFAULTS, **values, "received_at": values.get("received_at") or utcnow()}
    values["content_type"] = (values.get("content_type") or "")[:128] or None
    queued = values["outcome"] == "pending"
    if engine.dialect.name != "postgresql":
        with engine.begin() as connection:
            event_id = connection.execute(_EVENT_INSERT[connection.dialect.name], values).scalar_one_or_none()
            if event_id is not None and queued:
                connection.execute(insert(OutboxEntry), {"job": "event", "ref": str(event_id),
                                                         "created_at": values["received_at"], "trace": trace})
            return event_id
    sql, constants = _DRIVER[queued, queued and _Notifier.due()].text_and_constants(engine.dialect)
    with engine.connect() as connection:  # SQLAlchemy's checkout: its pool, pre-ping and connect errors
        driver = connection.connection.driver_connection
        driver.autocommit = True  # one statement: autocommit spares the BEGIN and COMMIT round trips
        try:
            row = driver_execute(connection, sql, {**values, **constants, "outbox_trace": trace}).fetchone()
        finally:
            if not driver.closed:
                driver.autocommit = False  # back to the pool as SQLAlchemy left it
    return None if row is None else row[0]


class OutboxRow(NamedTuple):
    id: int
    job: str
    ref: str
    trace: str | None
    source: str | None  # the source of the event ``ref`` names (None: no such event any more)


_OUTBOX = OutboxEntry.__tablename__
_EVENTS = InboundEvent.__tablename__
# one statement: the oldest rows, locked (those another relay holds skipped), deleted and returned with the
# source of the event each names
_TAKE_OUTBOX = (f"DELETE FROM {_OUTBOX} WHERE id = ANY(ARRAY(SELECT id FROM {_OUTBOX} ORDER BY id LIMIT %(limit)s "
                "FOR UPDATE SKIP LOCKED)) RETURNING id, job, ref, trace, "
                f"CASE WHEN job = 'event' THEN (SELECT source FROM {_EVENTS} WHERE {_EVENTS}.id = ref::bigint) END")
_SOURCE = (select(InboundEvent.source).where(InboundEvent.id == cast(OutboxEntry.ref, BigInteger))
           .scalar_subquery())


def take_outbox(connection: Connection, limit: int) -> list[OutboxRow]:
    """The oldest outbox rows, by id, deleted in the caller's open transaction: its commit removes them, a
    rollback (or a crash) leaves them for the next take. PostgreSQL: one prepared statement on the driver's
    connection, rows another relay holds skipped; SQLite: a select and a delete (its writer lock serialises
    the relays)."""
    if connection.dialect.name == "postgresql":
        return sorted(OutboxRow(*row) for row in driver_execute(connection, _TAKE_OUTBOX, {"limit": limit}))
    stmt = select(OutboxEntry.id, OutboxEntry.job, OutboxEntry.ref, OutboxEntry.trace, _SOURCE).order_by(OutboxEntry.id)
    rows = [OutboxRow(*row) for row in connection.execute(stmt.limit(limit))]
    if rows:
        connection.execute(delete(OutboxEntry).where(OutboxEntry.id.in_([row.id for row in rows])))
    return rows


def claim(session: Session, fulfilment_id: str, owner: str, lease_seconds: float,
          allowed_states: tuple[str, ...], commit: bool = True) -> bool:
    """Take the order's lease if nobody holds it and it is in one of ``allowed_states``.

    Bumping the version fences off a previous holder whose lease ran out: its commit now fails.
    ``commit=False`` leaves a successful claim in the open transaction for the caller to commit
    (before it calls Kraty); a failed one is always rolled back.
    """
    now = utcnow()
    result = session.execute(
        update(Fulfilment)
        .where(Fulfilment.id == fulfilment_id, Fulfilment.state.in_(allowed_states),
               or_(Fulfilment.lease_until.is_(None), Fulfilment.lease_until < now))
        .values(lease_owner=owner, lease_until=now + timedelta(seconds=lease_seconds),
                version=Fulfilment.version + 1)
        .execution_options(synchronize_session=False))
    if result.rowcount != 1:
        session.rollback()
        return False
    if commit:
        session.commit()
    return True


def release(fulfilment: Fulfilment) -> None:
    fulfilment.lease_owner = None
    fulfilment.lease_until = None


def stalled(session: Session, stale_before: datetime, now: datetime, limit: int = 500,
            after: tuple[datetime, str] | None = None) -> list[Fulfilment]:
    """Active orders nobody holds whose due time (next retry, else last change) is before ``stale_before``,
    by due time and id; ``after``: the (due time, id) of the last one of the previous page."""
    due = func.coalesce(Fulfilment.next_attempt_at, Fulfilment.updated_at)
    stmt = (select(Fulfilment)
            .where(Fulfilment.state.in_(states.ACTIVE),
                   or_(Fulfilment.lease_until.is_(None), Fulfilment.lease_until < now),
                   due <= stale_before))
    if after is not None:
        stmt = stmt.where(or_(due > after[0], and_(due == after[0], Fulfilment.id > after[1])))
    return list(session.scalars(stmt.order_by(due, Fulfilment.id).limit(limit)))

