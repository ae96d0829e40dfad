"""What needs a person: the counts on the console's home page and the flagged orders' list, each through an index
(failed: the state index; stuck: the partial index of the active orders, migration 0011; flagged: the partial index
on ``attention``; untraceable refunds: the reversals' state index; dead letters: the deliveries' state index;
disabled sinks: a row per sink), all counted in one statement, each up to ``MANY``."""
from __future__ import annotations

from datetime import datetime
from functools import cache

from sqlalchemy import bindparam, func, literal_column, select, text
from sqlalchemy.orm import Session

from middleware.ledger import states
from middleware.ledger.models import Delivery, Fulfilment, OutboundEvent, Reversal, SinkState, UTCDateTime
from middleware.ledger.order_models import ACTIVE_SQL
from middleware.ops.base import Actor, OpsError, utc
from middleware.ops.queries import summary
from middleware.orders.price_check import PRICE_MISMATCH, PRICE_UNKNOWN
from middleware.orders.reversal_rules import UNTRACED
from middleware.sinks.states import DEAD

# the kinds of flag an order's ``attention`` starts with; "other": anything else (an erased player...)
FLAGS = {"price": (f"{PRICE_MISMATCH}:", f"{PRICE_UNKNOWN}:"), "partial_refund": ("partial ",)}
FLAG_LABELS = {"price": "price mismatches", "partial_refund": "partial refunds", "other": "other flags"}
MANY = 1000   # the home page counts up to this, then shows "1000+"


def _starts(prefixes):
    condition = Fulfilment.attention.startswith(prefixes[0])
    for prefix in prefixes[1:]:
        condition = condition | Fulfilment.attention.startswith(prefix)
    return condition


def _flag_filter(kind: str | None):
    flagged = Fulfilment.attention.is_not(None)
    if kind is None:
        return flagged
    if kind == "other":
        return flagged & ~_starts(sum(FLAGS.values(), ()))
    if kind not in FLAGS:
        raise OpsError(422, "validation_failed", f"unknown flag {kind!r}",
                       {"fields": {"flag": [f"one of {', '.join(FLAG_LABELS)}"]}})
    return flagged & _starts(FLAGS[kind])


def _visible(stmt, actor: Actor, column):
    return stmt if actor.namespaces is None else stmt.where(column.in_(actor.namespaces))


def shown(count: int) -> str:
    """A count as the page shows it: ``"1000+"`` above ``MANY`` (the count stopped there)."""
    return f"{MANY}+" if count > MANY else str(count)


def _upto(stmt):
    """How many rows ``stmt`` selects, counting no further than ``MANY + 1``: a scalar subquery."""
    return select(func.count()).select_from(stmt.limit(MANY + 1).subquery()).scalar_subquery()


@cache
def _counts_statement(limited: bool, some_sinks: bool):
    """Every count of the home page in one statement (one round trip), each through an index and bounded by
    ``MANY``; parameters: ``stuck_before``, and ``namespaces`` (a key for some games) and ``sinks``."""
    f = Fulfilment
    one = literal_column("1")
    namespaces = bindparam("namespaces", expanding=True)

    def visible(stmt):
        return stmt.where(f.namespace.in_(namespaces)) if limited else stmt
    failed = visible(select(one).select_from(f).where(f.state.in_((states.FULFILL_FAILED, states.REVOKE_FAILED))))
    # the predicate written out as ix_fulfilments_stuck's (bound parameters would not match the partial index)
    stuck = visible(select(one).select_from(f).where(text(ACTIVE_SQL),
                                                     f.state_changed_at < bindparam("stuck_before", type_=UTCDateTime)))
    columns = [_upto(failed).label("failed"), _upto(stuck).label("stuck")]
    columns += [_upto(visible(select(one).select_from(f).where(_flag_filter(kind)))).label(f"flag_{kind}")
                for kind in FLAG_LABELS]
    if not limited:   # an untraced reversal has no order: its game is what the notice said
        columns.append(_upto(select(one).select_from(Reversal).where(Reversal.state == UNTRACED)).label("untraced"))
    dead = select(one).select_from(Delivery).where(Delivery.state == DEAD)
    if limited:
        dead = dead.join(OutboundEvent, OutboundEvent.id == Delivery.event_id) \
            .where(OutboundEvent.namespace.in_(namespaces))
    disabled = select(func.count()).where(SinkState.disabled_at.is_not(None))
    if some_sinks:
        disabled = disabled.where(SinkState.name.in_(bindparam("sinks", expanding=True)))
    columns += [_upto(dead).label("dead"), disabled.scalar_subquery().label("disabled")]
    return select(*columns)


def counts(session: Session, actor: Actor, stuck_before: datetime, sinks: list[str] | None = None) -> dict:
    """How many orders failed, are stuck (active, unchanged since ``stuck_before``), are flagged (per kind);
    how many refunds and disputes found no order (untraced), deliveries are dead-lettered and sinks disabled
    (of ``sinks``, the configured ones; None: every sink with a disabled row). Each count but the sinks' stops
    at ``MANY + 1`` (``shown``: "1000+"): the page says that there are many, at the cost of a few index probes."""
    limited, some_sinks = actor.namespaces is not None, sinks is not None
    params: dict = {"stuck_before": utc(stuck_before)}
    if limited:
        params["namespaces"] = list(actor.namespaces)
    if some_sinks:
        params["sinks"] = list(sinks)
    row = session.execute(_counts_statement(limited, some_sinks), params).one()._mapping
    flagged = {kind: row[f"flag_{kind}"] for kind in FLAG_LABELS}
    return {"failed": row["failed"], "stuck": row["stuck"], "flagged": flagged,
            "flaggedTotal": min(sum(flagged.values()), MANY + 1),
            "untracedReversals": None if limited else row["untraced"], "deadDeliveries": row["dead"],
            "disabledSinks": row["disabled"]}


def flagged_orders(session: Session, actor: Actor, kind: str | None = None, limit: int = 100) -> list[dict]:
    """The flagged orders (of one kind of flag), newest first."""
    f = Fulfilment
    stmt = _visible(select(f).where(_flag_filter(kind)), actor, f.namespace)
    return [summary(row) for row in session.scalars(stmt.order_by(f.created_at.desc(), f.id.desc()).limit(limit))]
