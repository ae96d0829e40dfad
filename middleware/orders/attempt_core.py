"""A worker's fulfil attempt on SQLAlchemy Core: the same ledger rules as ``attempts.attempt_fulfil``, in a
handful of statements on one pooled connection, without the ORM's unit of work.

1. The claim: one ``UPDATE ... RETURNING`` takes the lease (version + 1), moves RECEIVED to FULFILLING and
   returns the order; its items are read by one SELECT; the transition's history row is inserted; COMMIT —
   the lease and FULFILLING are durable before Kraty is called.
2. The Kraty calls, with the same stable idempotency keys (``attempts._grant``).
3. The results: the order's UPDATE fenced by the claimed version (a lease taken over meanwhile matches
   nothing: the results are dropped and the new holder repeats the calls with the same keys), the item rows
   and the history row, and the purchase event if a sink wants one; COMMIT without waiting for the WAL flush
   (as ``attempts._commit`` explains). A pooled connection returned moments ago is not pinged again
   (``KB_DATABASE_PRE_PING_IDLE``), so a busy worker's attempt is these statements and nothing more. On
   PostgreSQL each transaction is one statement, autocommitted (``attempt_pg``): the claim's and the results'
   COMMIT are their statements' own.

An order whose lines must first be looked up in its store, or that the claim cannot take, goes the ORM
way (``attempts.attempt_fulfil``), which handles every case.

A storefront's fulfil PUT makes its order's first attempt here too (``attempt_inserted``): the order was
inserted and committed leased by this process and already FULFILLING (``order_insert``), so that insert was
the claim, and the attempt goes straight to step 2 with the version it was inserted with.
"""
from __future__ import annotations

import logging
from datetime import datetime, timedelta
from types import SimpleNamespace

from sqlalchemy import bindparam, case, insert, or_, select, update
from sqlalchemy.orm import Session

from middleware.ledger import prepared, states
from middleware.ledger.prepared import Prepared
from middleware.ledger.models import Fulfilment, FulfilmentItem, HistoryEntry, UTCDateTime, utcnow
from middleware.metrics import recorders as metrics
from middleware.orders import attempt_pg, attempts
from middleware.orders import retry
from middleware.orders.attempts import FULFIL_STATES, Outcome
from middleware.orders.purchase_events import event_type, payload
from middleware.services import Services
from middleware.sinks.outbound_events import emit

log = logging.getLogger(__name__)

F, I, H = Fulfilment.__table__, FulfilmentItem.__table__, HistoryEntry.__table__
_NOW = bindparam("p_now", type_=UTCDateTime())
_RECEIVED = F.c.state == states.RECEIVED

CLAIM = (update(F)
         .where(F.c.id == bindparam("p_id"), F.c.state.in_(FULFIL_STATES), F.c.lookup.is_(None),
                or_(F.c.lease_until.is_(None), F.c.lease_until < _NOW))
         .values(lease_owner=bindparam("p_owner"), lease_until=bindparam("p_until", type_=UTCDateTime()),
                 version=F.c.version + 1,
                 state=case((_RECEIVED, states.FULFILLING), else_=F.c.state),
                 reason=case((_RECEIVED, None), else_=F.c.reason),
                 updated_at=case((_RECEIVED, _NOW), else_=F.c.updated_at),
                 state_changed_at=case((_RECEIVED, _NOW), else_=F.c.state_changed_at))
         .returning(*F.c))
ITEMS = select(*I.c).where(I.c.fulfilment_id == bindparam("p_id")).order_by(I.c.line_no, I.c.component_no)
RESULT_COLUMNS = ("state", "reason", "attempts", "next_attempt_at", "lease_owner", "lease_until", "updated_at",
                  "state_changed_at", "followup_state", "followup_at")
RESULTS = (update(F).where(F.c.id == bindparam("p_id"), F.c.version == bindparam("p_version"))
           .values(version=F.c.version + 1, **{name: bindparam(f"p_{name}", type_=F.c[name].type)
                                               for name in RESULT_COLUMNS}))
ITEM_COLUMNS = ("state", "idempotency_key", "kraty_entry_id", "error_code", "error", "updated_at")
ITEM_RESULTS = (update(I).where(I.c.id == bindparam("p_id"))
                .values(**{name: bindparam(f"p_{name}", type_=I.c[name].type) for name in ITEM_COLUMNS}))
HISTORY = insert(H)
CLAIM_PG = Prepared(attempt_pg.claim_statement(CLAIM, _NOW))


def attempt_fulfil(services: Services, fulfilment_id: str, actor: str) -> Outcome:
    """Take the lease of an order being fulfilled and grant its PENDING items in Kraty (Core statements)."""
    with services.engine.connect() as connection:
        claimed = _claim(services, connection, fulfilment_id, actor)
        if claimed is None:
            connection.rollback()
        else:
            f, version = claimed
            return _run(services, connection, f, version, actor)
    return attempts.attempt_fulfil(services, fulfilment_id, actor)


def attempt_inserted(services: Services, connection, f, actor: str) -> Outcome:
    """The first attempt of an order ``order_insert.insert_order`` has just committed on ``connection``, leased
    by this process (``services.identity``) and FULFILLING: the calls and their results, fenced by the version
    it was inserted with (a lease taken over meanwhile drops them, as for any claim)."""
    return _run(services, connection, f, f.version, actor)


def _claim(services: Services, connection, fulfilment_id: str, actor: str):
    """(the order with its items, the version the claim gave it), committed; None if the claim took nothing."""
    now = utcnow()
    parameters = {"p_id": fulfilment_id, "p_now": now, "p_owner": services.identity, "p_actor": actor,
                  "p_until": now + timedelta(seconds=services.settings.lease_seconds)}
    if connection.dialect.name == "postgresql":  # claim, transition's history row and items: one statement
        order, items = attempt_pg.split_rows(CLAIM_PG, prepared.execute(connection, CLAIM_PG, parameters,
                                                                         autocommit=True))
        if order is None:
            connection.rollback()
            return None
        f = SimpleNamespace(**order)
        f.items = [SimpleNamespace(**item) for item in items]
    else:
        row = connection.execute(CLAIM, parameters).first()
        if row is None:
            return None
        f = SimpleNamespace(**row._mapping)
        f.items = [SimpleNamespace(**item._mapping) for item in connection.execute(ITEMS, {"p_id": fulfilment_id})]
        if f.state_changed_at == now:  # RECEIVED -> FULFILLING just now: Kraty is about to be called
            connection.execute(HISTORY, _history(f, actor, states.RECEIVED, states.FULFILLING, None, now))
    connection.commit()
    return f, f.version


def _history(f, actor: str, from_state: str, to_state: str, detail: dict | None, now: datetime) -> dict:
    return {"fulfilment_id": f.id, "at": now, "actor": actor, "from_state": from_state, "to_state": to_state,
            "detail": detail}


def _run(services: Services, connection, f, version: int, actor: str) -> Outcome:
    f.attempts += 1
    client = services.kraty(f.namespace)
    todo = [item for item in f.items if item.state == states.ITEM_PENDING and item.kind]
    summary, transient = attempts._run_calls(todo, lambda item: attempts._grant(client, f, item),
                                             attempts._granted, states.ITEM_FAILED)
    pending = any(item.state == states.ITEM_PENDING for item in f.items)
    any_failed = any(item.state == states.ITEM_FAILED for item in f.items)
    now = utcnow()
    outcome, entry = _finish(services.settings, f, actor, summary, transient, pending, any_failed, now)
    base = {"p_id": f.id, "p_version": version, **{f"p_{name}": getattr(f, name) for name in RESULT_COLUMNS}}
    event = _event(services, f)
    if connection.dialect.name == "postgresql":  # the order, its items, the history row: one statement,
        # autocommitted unless a purchase event is to be written in its transaction
        fenced = prepared.execute(connection, attempt_pg.results_statement(RESULTS, ITEM_COLUMNS, len(todo)),
                                  attempt_pg.results_parameters(base, todo, ITEM_COLUMNS, entry),
                                  autocommit=event is None)
    else:
        fenced = connection.execute(RESULTS, base)
    if fenced.rowcount != 1:
        connection.rollback()
        log.warning("lease on %s was taken over during the attempt; its results are left to the new holder", f.id)
        return Outcome(False)
    if connection.dialect.name != "postgresql":
        if todo:
            connection.execute(ITEM_RESULTS, [{"p_id": item.id, **{f"p_{name}": getattr(item, name)
                                                                    for name in ITEM_COLUMNS}} for item in todo])
        connection.execute(HISTORY, entry)
    outcome.deliveries = tuple(_emit(services, connection, f, event, now)) if event is not None else ()
    connection.commit()
    if outcome.retry_in is None:
        log.info("order %s attempt %d: %s%s", f.id, f.attempts, f.state, f" ({f.reason})" if f.reason else "")
    return metrics.after_fulfil_attempt(f, outcome)


def _finish(settings, f, actor: str, summary: dict, transient, pending: bool, any_failed: bool,
            now: datetime) -> tuple[Outcome, dict]:
    """The order's next state, the lease given back, and the attempt's history row (``attempts._finish``'s
    rules)."""
    detail = {"attempt": f.attempts, **summary}
    f.lease_owner = f.lease_until = f.next_attempt_at = None
    f.updated_at = now
    if pending:
        detail["transient"] = str(transient) if transient else "not attempted"
        age = (now - f.state_changed_at).total_seconds()  # since this fulfil began
        delay = retry.for_orders(settings).next_delay(f.attempts, transient.retry_after if transient else None, age)
        if delay is not None:
            f.next_attempt_at = now + timedelta(seconds=delay)
            f.reason = f"retrying after transient error: {transient}"
            detail["retry_in"] = round(delay, 3)
            log.info("order %s attempt %d: %s, retry in %.1f s (%s)", f.id, f.attempts, f.state, delay, transient)
            return Outcome(True, f.state, delay, f.attempts), _history(f, actor, f.state, f.state, detail, now)
        to_state, reason = states.FULFILL_FAILED, f"retries exhausted after {f.attempts} attempts: {transient}"
    elif any_failed:
        errors = [item.error for item in f.items if item.state == states.ITEM_FAILED]
        to_state, reason = states.FULFILL_FAILED, f"{len(errors)} item(s) failed: {errors[0]}"
    else:
        to_state, reason = states.FULFILLED, None
    states.check_transition(f.state, to_state)
    entry = _history(f, actor, f.state, to_state, detail, now)
    f.state, f.reason, f.state_changed_at = to_state, reason, now
    followup = bool(f.followup) and f.followup_state is None and f.state == states.FULFILLED
    if followup:
        f.followup_state, f.followup_at = "pending", now
    return Outcome(True, f.state, None, f.attempts, followup), entry


def _event(services: Services, f) -> tuple[str, dict] | None:
    """The purchase event (kind, extra payload) of the attempt's outcome, when a sink wants it."""
    kind, extra = event_type(f, states.FULFILLED)
    if kind is None or services.sinks is None or not services.sinks.matching(kind, f.environment):
        return None
    return kind, extra


def _emit(services: Services, connection, f, event: tuple[str, dict], now: datetime) -> list[str]:
    """The purchase event, in the attempt's transaction."""
    kind, extra = event
    with Session(bind=connection) as session:  # joins the connection's transaction; the caller commits
        return emit(session, kind, f.namespace, f.player_id, f.environment, now, payload(f, **extra),
                    sinks=services.sinks, fulfilment_id=f.id)
