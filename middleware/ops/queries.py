"""Finding orders and showing one: filters, keyset pages, the order's detail (items, events, history)."""
from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, exists, select, text, tuple_
from sqlalchemy.orm import Session

from middleware.ledger import repository as repo
from middleware.ledger.models import (
    Delivery,
    Fulfilment,
    FulfilmentItem,
    InboundEvent,
    OutboundEvent,
)
from middleware.ops.base import Actor, OpsError, _body, iso, utc
from middleware.ops.filters import check_page, filters, in_range


# -- orders: list -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class FulfilmentQuery:
    namespace: str | None = None
    source: str | None = None
    state: str | None = None
    player_id: str | None = None
    transaction_id: str | None = None
    sku: str | None = None
    environment: str | None = None
    created_after: datetime | None = None     # inclusive
    created_before: datetime | None = None    # exclusive

    def as_filters(self) -> dict:
        return {"namespace": self.namespace, "source": self.source, "state": self.state, "player": self.player_id,
                "transaction": self.transaction_id, "sku": self.sku, "environment": self.environment,
                "after": iso(self.created_after), "before": iso(self.created_before)}


# what ``summary`` reads: lists select these columns only (no ORM objects, no JSON order lines to decode)
SUMMARY_COLUMNS = tuple(getattr(Fulfilment, name) for name in (
    "id", "namespace", "source", "storefront", "transaction_id", "player_id", "environment", "state", "reason",
    "attention", "price", "currency", "attempts", "created_at", "updated_at"))


def summary(f) -> dict:
    """An order's line in a list, from the order or from a row of ``SUMMARY_COLUMNS``."""
    return {"id": f.id, "namespace": f.namespace, "source": f.source, "storefront": f.storefront or None,
            "transactionId": f.transaction_id,
            "playerId": f.player_id, "environment": f.environment, "state": f.state, "reason": f.reason,
            "attention": f.attention, "price": f.price, "currency": f.currency, "attempts": f.attempts,
            "createdAt": iso(f.created_at), "updatedAt": iso(f.updated_at)}


def _in_time(stmt, created, key, query: FulfilmentQuery, after: tuple[datetime, str] | None):
    """``stmt`` limited to the query's time range and to the rows after the keyset ``after``, the order's
    (created_at, id) being the columns ``created`` and ``key``."""
    stmt = stmt.where(*in_range(created, query.created_after, query.created_before))
    if after is not None:
        stmt = stmt.where(tuple_(created, key) < tuple_(utc(after[0]), after[1]))
    return stmt


COMMON_SKU_SHARE = 0.05     # a SKU on at least this share of item rows is "common"
_SKU_SHARES: dict[str, tuple[float, dict[str, float]]] = {}   # database URL -> (read at, {sku: share})
SKU_SHARES_TTL = 600.0


def sku_is_common(session: Session, sku: str) -> bool:
    """Whether PostgreSQL's statistics (``ANALYZE``: the most common values of fulfilment_items.sku) put this
    SKU on at least ``COMMON_SKU_SHARE`` of the item rows; read once per ``SKU_SHARES_TTL`` per process. Other
    databases, or no statistics yet: not common."""
    bind = session.get_bind()
    if bind.dialect.name != "postgresql":
        return False
    key = str(bind.engine.url)   # an Engine, or a Connection (a read session in autocommit)
    read_at, shares = _SKU_SHARES.get(key, (0.0, {}))
    if time.monotonic() - read_at > SKU_SHARES_TTL:
        row = session.execute(text(
            "SELECT most_common_vals::text::text[], most_common_freqs FROM pg_stats "
            "WHERE tablename = 'fulfilment_items' AND attname = 'sku' LIMIT 1")).first()
        shares = dict(zip(row[0], row[1])) if row and row[0] else {}
        _SKU_SHARES[key] = (time.monotonic(), shares)
    return shares.get(sku, 0.0) >= COMMON_SKU_SHARE


def list_fulfilments(session: Session, actor: Actor, query: FulfilmentQuery, limit: int = 50,
                     after: tuple[datetime, str] | None = None) -> tuple[list[dict], tuple[datetime, str] | None]:
    """One page, newest first (created_at, then id, descending), after the keyset ``after``.

    Returns the rows and the keyset of the next page (None on the last page). Every filter is served by an
    index (see migration 0006) whose trailing columns are (created_at, id), so a page deep in the list costs
    the same as the first. A SKU filter pages through the item rows' index (sku, order_created_at,
    fulfilment_id) instead: the page's keys are picked there, each order once however many of its rows name
    the SKU (a bundle, a repeated line), the other filters checked on the order (a primary-key probe per
    candidate), the LIMIT inside so the planner sizes that scan to the page. With a player or a transaction
    id, which name a handful of orders, or with a common SKU (``sku_is_common``) and another filter, the
    orders are walked instead, each probed for the SKU.
    """
    check_page(actor, limit, query.namespace)
    f = Fulfilment
    where = filters(actor, f.namespace, (
        (f.namespace, query.namespace), (f.source, query.source), (f.state, query.state),
        (f.player_id, query.player_id), (f.transaction_id, query.transaction_id), (f.environment, query.environment)))
    i = FulfilmentItem
    # walk the orders and probe each for the SKU when they are a handful (a player, a transaction) or when the
    # SKU is common and another filter narrows the orders: their own indexes find those matches faster than a
    # walk through a common SKU's item rows. Otherwise the SKU's item rows pick the page.
    others = any(value is not None for value in (query.namespace, query.source, query.state, query.environment,
                                                 query.created_after, query.created_before))
    few = query.player_id is not None or query.transaction_id is not None or (
        query.sku is not None and others and sku_is_common(session, query.sku))
    if query.sku is not None and few:   # each probed for the SKU (one index entry)
        where.append(exists().where(i.sku == query.sku, i.order_created_at == f.created_at, i.fulfilment_id == f.id))
    if query.sku is None or few:
        stmt = _in_time(select(*SUMMARY_COLUMNS).where(*where), f.created_at, f.id, query, after) \
            .order_by(f.created_at.desc(), f.id.desc()).limit(limit + 1)
    else:   # the page's (created_at, id) from the items' index, then the orders by primary key
        keys = select(i.order_created_at, i.fulfilment_id).where(i.sku == query.sku)
        if where:
            keys = keys.where(exists().where(f.id == i.fulfilment_id, *where))
        keys = _in_time(keys, i.order_created_at, i.fulfilment_id, query, after).distinct() \
            .order_by(i.order_created_at.desc(), i.fulfilment_id.desc()).limit(limit + 1).subquery()
        stmt = select(*SUMMARY_COLUMNS) \
            .join(keys, and_(f.id == keys.c.fulfilment_id, f.created_at == keys.c.order_created_at)) \
            .order_by(keys.c.order_created_at.desc(), keys.c.fulfilment_id.desc())
    rows = session.execute(stmt).all()
    more = len(rows) > limit
    rows = rows[:limit]
    return [summary(row) for row in rows], ((rows[-1].created_at, rows[-1].id) if more else None)


# -- orders: one --------------------------------------------------------------------------------------

def _visible(session: Session, actor: Actor, fulfilment_id: str, *, rows: bool = False) -> Fulfilment:
    """The order, if ``actor`` may see it (else 404); ``rows``: read with its item rows and history too."""
    f = None
    if len(fulfilment_id) <= 64:
        f = repo.load(session, fulfilment_id, history=True) if rows else session.get(Fulfilment, fulfilment_id)
    if f is None or not actor.sees(f.namespace):  # another game's order is not shown to exist
        raise OpsError(404, "not_found", f"no order {fulfilment_id}")
    return f


def item_view(i: FulfilmentItem) -> dict:
    return {"id": i.id, "line": i.line_no, "component": i.component_no, "sku": i.sku,
            "componentSku": i.component_sku, "itemId": i.item_id, "kind": i.kind, "target": i.target,
            "amount": i.amount, "revokedAmount": i.revoked_amount, "state": i.state, "errorCode": i.error_code,
            "error": i.error, "cycle": i.cycle, "kratyLedgerEntryId": i.kraty_entry_id, "kratyRevokeEntryId": i.revoke_entry_id,
            "updatedAt": iso(i.updated_at)}


def event_view(e: InboundEvent) -> dict:
    return {"id": e.id, "source": e.source, "providerEventId": e.provider_event_id, "type": e.event_type,
            "namespace": e.namespace, "receivedAt": iso(e.received_at), "outcome": e.outcome, "detail": e.detail,
            "contentType": e.content_type, **_body(e.raw_body)}


def history_view(h) -> dict:
    return {"id": h.id, "at": iso(h.at), "actor": h.actor, "from": h.from_state, "to": h.to_state,
            "detail": h.detail}


def delivery_view(d: Delivery) -> dict:
    return {"id": d.id, "sink": d.sink, "state": d.state, "attempts": d.attempts, "lastStatus": d.last_status,
            "lastError": d.last_error, "nextAttemptAt": iso(d.next_attempt_at), "deliveredAt": iso(d.delivered_at)}


def fulfilment_detail(session: Session, actor: Actor, fulfilment_id: str) -> dict:
    """The order with its rows, full history, the store events behind it (redacted), the Kraty webhooks
    about it and what the sinks were sent about it."""
    f = _visible(session, actor, fulfilment_id, rows=True)   # the order, its items and history: two statements
    events = list(session.scalars(select(InboundEvent).where(InboundEvent.fulfilment_id == f.id)
                                  .order_by(InboundEvent.id)))
    # Kraty webhooks about the order: linked to it when handled, or named by a "confirmed by Kraty" note
    named = {str(h.detail.get("event")) for h in f.history
             if isinstance(h.detail, dict) and h.detail.get("confirmed_by_kraty") and h.detail.get("event")}
    kraty = [e for e in events if e.source == "kraty"]
    seen = {e.id for e in kraty}
    if named:
        kraty += [e for e in session.scalars(select(InboundEvent).where(
            InboundEvent.source == "kraty", InboundEvent.namespace == f.namespace,
            InboundEvent.provider_event_id.in_(sorted(named)))) if e.id not in seen]
    deliveries = session.execute(
        select(OutboundEvent, Delivery).outerjoin(Delivery, Delivery.event_id == OutboundEvent.id)
        .where(OutboundEvent.fulfilment_id == f.id).order_by(OutboundEvent.created_at, OutboundEvent.id)).all()
    sink_events: dict[str, dict] = {}
    for event, delivery in deliveries:
        entry = sink_events.setdefault(event.id, {"eventId": event.id, "type": event.type,
                                                  "occurredAt": iso(event.occurred_at),
                                                  "playerSequence": event.player_seq, "deliveries": []})
        if delivery is not None:
            entry["deliveries"].append(delivery_view(delivery))
    return {**summary(f), "lines": f.lines, "lookup": f.lookup, "playerKey": f.player_key,
            "followup": f.followup, "followupState": f.followup_state, "nextAttemptAt": iso(f.next_attempt_at),
            "stateChangedAt": iso(f.state_changed_at), "items": [item_view(i) for i in f.items],
            "history": [history_view(h) for h in f.history],
            "inboundEvents": [event_view(e) for e in events if e.source != "kraty"],
            "kratyWebhooks": [event_view(e) for e in sorted(kraty, key=lambda e: e.id)],
            "sinkEvents": list(sink_events.values())}
