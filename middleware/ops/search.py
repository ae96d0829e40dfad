"""Search: the orders any id a customer or a store quotes names, and the players whose id starts with it.

Every id the ledger holds for an order is looked up through an index (migration 0008):

===================  ==================================================================================
where                which ids
===================  ==================================================================================
``fulfilments.id``   the order's own id
``transaction_id``   Checkout Session ``cs_…``, direct PaymentIntent ``pi_…``, invoice ``in_…``, Apple
                     ``transactionId``, Google order id (subscriptions) or purchase token (one-time
                     products), a storefront's transaction id
``player_key``       Apple ``originalTransactionId``, Google purchase token (every renewal's order)
``payment_refs.ref`` the payment's ids: PaymentIntent, charges ``ch_…``/``py_…``, invoice, Google order id
                     ``GPA.…`` of a one-time product
``reversals``        ``store_ref``: a refund ``re_…`` or dispute ``dp_…`` (``du_…``) id
``player_id``        exactly (the player's orders), and as a prefix (the players it starts)
===================  ==================================================================================
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from functools import cache

from sqlalchemy import String, bindparam, func, literal_column, select, text, union_all
from sqlalchemy.orm import Session

from middleware.ledger.models import Fulfilment, PaymentRef, Reversal
from middleware.ops.base import Actor, MAX_PAGE, OpsError, iso
from middleware.ops.filters import check_page, filters
from middleware.ops.queries import FulfilmentQuery, list_fulfilments, summary

MAX_QUERY = 255
PLAYERS = 20          # players listed for a prefix
PER_LOOKUP = MAX_PAGE  # orders one id may name (a purchase token's renewals...) read per lookup

# how an order matched: the label front ends show
MATCHES = {"orderId": "order id", "transactionId": "transaction id",
           "playerKey": "original transaction id / purchase token",
           "paymentRef": "payment id (PaymentIntent, charge, invoice, Google order id)",
           "reversal": "refund or dispute id", "playerId": "player id"}
WAYS = ("orderId", "transactionId", "playerKey", "paymentRef", "reversal")   # an order named two ways: the first


@dataclass(frozen=True)
class SearchQuery:
    q: str
    namespace: str | None = None
    state: str | None = None
    created_after: datetime | None = None    # inclusive
    created_before: datetime | None = None   # exclusive

    def as_filters(self) -> dict:
        return {"q": self.q, "namespace": self.namespace, "state": self.state, "after": iso(self.created_after),
                "before": iso(self.created_before)}


@cache
def _found(with_order_id: bool):
    """(order ``id``, ``how``: the first way, a rank in ``WAYS``, the ``q`` parameter names it) over every
    indexed store id, each way at most ``PER_LOOKUP`` orders: one statement (UNION ALL), built once per shape
    (the order id is looked up only when ``q`` is short enough to be one)."""
    f = Fulfilment
    q = bindparam("q", type_=String)
    lookups = {"orderId": select(f.id.label("id")).where(f.id == q),
               "transactionId": select(f.id.label("id")).where(f.transaction_id == q),
               "playerKey": select(f.id.label("id")).where(f.player_key == q),
               "paymentRef": select(PaymentRef.fulfilment_id.label("id")).where(
                   PaymentRef.ref == q, PaymentRef.fulfilment_id.is_not(None)),
               "reversal": select(Reversal.fulfilment_id.label("id")).where(
                   Reversal.store_ref == q, Reversal.fulfilment_id.is_not(None))}
    if not with_order_id:
        del lookups["orderId"]
    parts = []
    for how, stmt in lookups.items():
        one = stmt.limit(PER_LOOKUP).subquery()
        parts.append(select(one.c.id, literal_column(str(WAYS.index(how))).label("how")))
    matches = union_all(*parts).subquery()
    return select(matches.c.id, func.min(matches.c.how).label("how")).group_by(matches.c.id).subquery()


def _upper_bound(prefix: str) -> str | None:
    """The least string above every string starting with ``prefix`` (code point order = byte order in UTF-8)."""
    for i in range(len(prefix) - 1, -1, -1):
        if ord(prefix[i]) < 0x10FFFF and not 0xD7FF <= ord(prefix[i]) < 0xDFFF:
            return prefix[:i] + chr(ord(prefix[i]) + 1)
    return None


def _like(prefix: str) -> str:
    return prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


_PG_PLAYERS = """
WITH RECURSIVE p(player_id) AS (
  (SELECT player_id FROM fulfilments WHERE player_id ~>=~ :lo {hi} AND player_id LIKE :pat ESCAPE '\\' {ns}
   ORDER BY player_id USING ~<~ LIMIT 1)
  UNION ALL
  SELECT (SELECT f.player_id FROM fulfilments f WHERE f.player_id ~>~ p.player_id {fhi}
          AND f.player_id LIKE :pat ESCAPE '\\' {fns} ORDER BY f.player_id USING ~<~ LIMIT 1)
  FROM p WHERE p.player_id IS NOT NULL),
ids AS (SELECT player_id FROM p WHERE player_id IS NOT NULL LIMIT :n),
g(player_id, namespace) AS (
  SELECT ids.player_id, (SELECT f.namespace FROM fulfilments f WHERE f.player_id = ids.player_id {fns}
                         ORDER BY f.namespace LIMIT 1) FROM ids
  UNION ALL
  SELECT g.player_id, (SELECT f.namespace FROM fulfilments f WHERE f.player_id = g.player_id
                       AND f.namespace > g.namespace {fns} ORDER BY f.namespace LIMIT 1)
  FROM g WHERE g.namespace IS NOT NULL)
SELECT namespace, player_id FROM g WHERE namespace IS NOT NULL
"""


def players_by_prefix(session: Session, actor: Actor, prefix: str, namespace: str | None = None,
                      limit: int = PLAYERS) -> list[dict]:
    """The players (namespace, id) whose id starts with ``prefix``, in id order, at most ``limit`` ids; one
    statement. PostgreSQL walks the (player_id ``text_pattern_ops``, namespace) index one distinct id at a time,
    then each id's games one at a time (loose index scans), so a short prefix costs a probe per player and game
    listed, not one per order."""
    namespaces = [namespace] if namespace is not None else (list(actor.namespaces) if actor.namespaces else None)
    params = {"lo": prefix, "pat": _like(prefix), "n": limit}
    hi = _upper_bound(prefix)
    if session.get_bind().dialect.name == "postgresql":
        params.update(hi=hi, ns=namespaces)
        sql = _PG_PLAYERS.format(hi="AND player_id ~<~ :hi" if hi else "",
                                 fhi="AND f.player_id ~<~ :hi" if hi else "",
                                 ns="AND namespace = ANY(:ns)" if namespaces else "",
                                 fns="AND f.namespace = ANY(:ns)" if namespaces else "")
        pairs = session.execute(text(sql), params).all()
    else:
        f = Fulfilment
        ids = select(f.player_id).where(f.player_id.like(params["pat"], escape="\\"), f.player_id >= prefix,
                                        *([f.player_id < hi] if hi else []))
        stmt = select(f.namespace, f.player_id)
        if namespaces:
            ids = ids.where(f.namespace.in_(namespaces))
            stmt = stmt.where(f.namespace.in_(namespaces))
        ids = ids.distinct().order_by(f.player_id).limit(limit).scalar_subquery()
        pairs = session.execute(stmt.where(f.player_id.in_(ids)).distinct()).all()
    pairs = sorted(pairs, key=lambda row: (row[1], row[0]))
    return [{"namespace": ns, "playerId": player} for ns, player in pairs]


def search(session: Session, actor: Actor, query: SearchQuery, limit: int = 50) -> dict:
    """The orders ``query.q`` names (by any id; each says how it matched, ``matchedBy``) and, when it is a
    player id or the start of one, the player's orders and the players it starts; every list newest first,
    within the query's game, state and time range. ``more``: whether more orders matched than were shown."""
    q = query.q.strip()
    if not 1 <= len(q) <= MAX_QUERY or not q.isprintable():
        raise OpsError(422, "validation_failed", f"q must be 1-{MAX_QUERY} printable characters",
                       {"fields": {"q": [f"1-{MAX_QUERY} printable characters"]}})
    check_page(actor, limit, query.namespace)
    f = Fulfilment
    found = _found(len(q) <= 32)   # no order id is longer
    stmt = select(f, found.c.how).join(found, f.id == found.c.id).where(*filters(
        actor, f.namespace, ((f.namespace, query.namespace), (f.state, query.state)),
        f.created_at, query.created_after, query.created_before))
    rows = session.execute(stmt.order_by(f.created_at.desc(), f.id.desc()).limit(limit + 1), {"q": q})
    orders = [{**summary(row), "matchedBy": WAYS[how]} for row, how in rows]
    by_player, more_player = list_fulfilments(session, actor, FulfilmentQuery(
        namespace=query.namespace, state=query.state, player_id=q, created_after=query.created_after,
        created_before=query.created_before), limit)
    seen = {order["id"] for order in orders}
    orders += [{**row, "matchedBy": "playerId"} for row in by_player if row["id"] not in seen]
    orders.sort(key=lambda o: (o["createdAt"], o["id"]), reverse=True)
    return {"query": query.as_filters(), "orders": orders[:limit],
            "more": len(orders) > limit or more_player is not None,
            "players": players_by_prefix(session, actor, q, query.namespace)}
