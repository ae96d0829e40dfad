"""What needs a person: the counts on the console's home page and the flagged orders' list, each through an index
(failed and stuck: the state indexes; flagged: the partial index on ``attention``; untraceable refunds: the
reversals' state index; dead letters: the deliveries' state index; disabled sinks: a row per sink)."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from middleware.ledger import states
from middleware.ledger.models import Delivery, Fulfilment, OutboundEvent, Reversal, SinkState
from middleware.ops.base import Actor, OpsError, utc
from middleware.ops.queries import summary
from middleware.orders.price_check import PRICE_MISMATCH, PRICE_UNKNOWN
from middleware.orders.reversal_rules import UNTRACED
from middleware.sinks.states import DEAD

# the kinds of flag an order's ``attention`` starts with; "other": anything else (an erased player...)
FLAGS = {"price": (f"{PRICE_MISMATCH}:", f"{PRICE_UNKNOWN}:"), "partial_refund": ("partial ",)}
FLAG_LABELS = {"price": "price mismatches", "partial_refund": "partial refunds", "other": "other flags"}


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


def counts(session: Session, actor: Actor, stuck_before: datetime, sinks: list[str] | None = None) -> dict:
    """How many orders failed, are stuck (active, unchanged since ``stuck_before``), are flagged (per kind);
    how many refunds and disputes found no order (untraced), deliveries are dead-lettered and sinks disabled
    (of ``sinks``, the configured ones; None: every sink with a disabled row)."""
    f = Fulfilment
    count = func.count()
    failed = session.scalar(_visible(select(count).where(
        f.state.in_((states.FULFILL_FAILED, states.REVOKE_FAILED))), actor, f.namespace))
    stuck = session.scalar(_visible(select(count).where(
        f.state.in_(states.ACTIVE), f.state_changed_at < utc(stuck_before)), actor, f.namespace))
    flagged = {kind: session.scalar(_visible(select(count).where(_flag_filter(kind)), actor, f.namespace))
               for kind in FLAG_LABELS}
    untraced_stmt = select(count).where(Reversal.state == UNTRACED)
    if actor.namespaces is not None:   # an untraced reversal has no order: its game is what the notice said
        untraced_stmt = None
    untraced = session.scalar(untraced_stmt) if untraced_stmt is not None else None
    dead_stmt = select(count).select_from(Delivery).where(Delivery.state == DEAD)
    if actor.namespaces is not None:
        dead_stmt = dead_stmt.join(OutboundEvent, OutboundEvent.id == Delivery.event_id) \
            .where(OutboundEvent.namespace.in_(actor.namespaces))
    disabled_stmt = select(count).where(SinkState.disabled_at.is_not(None))
    if sinks is not None:
        disabled_stmt = disabled_stmt.where(SinkState.name.in_(sinks))
    return {"failed": failed, "stuck": stuck, "flagged": flagged, "flaggedTotal": sum(flagged.values()),
            "untracedReversals": untraced, "deadDeliveries": session.scalar(dead_stmt),
            "disabledSinks": session.scalar(disabled_stmt)}


def flagged_orders(session: Session, actor: Actor, kind: str | None = None, limit: int = 100) -> list[dict]:
    """The flagged orders (of one kind of flag), newest first."""
    f = Fulfilment
    stmt = _visible(select(f).where(_flag_filter(kind)), actor, f.namespace)
    return [summary(row) for row in session.scalars(stmt.order_by(f.created_at.desc(), f.id.desc()).limit(limit))]
