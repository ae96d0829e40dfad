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

from sqlalchemy.orm import Session

from middleware.ops import search_sql
from middleware.ops.base import Actor, OpsError, iso, utc
from middleware.ops.filters import check_page
from middleware.ops.queries import summary
from middleware.ops.search_sql import WAYS

MAX_QUERY = 255
PLAYERS = 20          # players listed for a prefix

# how an order matched: the label front ends show
MATCHES = {"orderId": "order id", "transactionId": "transaction id",
           "playerKey": "original transaction id / purchase token",
           "paymentRef": "payment id (PaymentIntent, charge, invoice, Google order id)",
           "reversal": "refund or dispute id", "playerId": "player id"}


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


def _upper_bound(prefix: str) -> str | None:
    """The least string above every string starting with ``prefix`` (code point order = byte order in UTF-8)."""
    for i in range(len(prefix) - 1, -1, -1):
        if ord(prefix[i]) < 0x10FFFF and not 0xD7FF <= ord(prefix[i]) < 0xDFFF:
            return prefix[:i] + chr(ord(prefix[i]) + 1)
    return None


def _like(prefix: str) -> str:
    return prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def search(session: Session, actor: Actor, query: SearchQuery, limit: int = 50) -> dict:
    """The orders ``query.q`` names (by any id; each says how it matched, ``matchedBy``) and, when it is a
    player id or the start of one, the player's orders and the players it starts; every list newest first,
    within the query's game, state and time range. ``more``: whether more orders matched than were shown."""
    q = query.q.strip()
    if not 1 <= len(q) <= MAX_QUERY or not q.isprintable():
        raise OpsError(422, "validation_failed", f"q must be 1-{MAX_QUERY} printable characters",
                       {"fields": {"q": [f"1-{MAX_QUERY} printable characters"]}})
    check_page(actor, limit, query.namespace)
    namespaces = [query.namespace] if query.namespace is not None else (
        list(actor.namespaces) if actor.namespaces is not None else None)
    hi = _upper_bound(q)
    stmt = search_sql.statement(session.get_bind().dialect.name == "postgresql", len(q) <= 32,
                                query.namespace is not None, query.state is not None,
                                query.created_after is not None, query.created_before is not None,
                                actor.namespaces is not None, hi is not None, namespaces is not None)
    params = {"q": q, "rows": limit + 1, "lo": q, "pat": _like(q), "hi": hi, "players": PLAYERS,
              "namespace": query.namespace, "state": query.state, "namespaces": list(actor.namespaces or ()),
              "after": None if query.created_after is None else utc(query.created_after),
              "before": None if query.created_before is None else utc(query.created_before),
              "player_namespaces": namespaces}
    orders, players = [], []
    for row in session.execute(stmt, {name: value for name, value in params.items() if value is not None}):
        if row.how == search_sql.PLAYER_ROW:
            players.append({"namespace": row.namespace, "playerId": row.player_id})
        else:
            orders.append({**summary(row), "matchedBy": WAYS[row.how]})
    orders.sort(key=lambda o: (o["createdAt"], o["id"]), reverse=True)
    players.sort(key=lambda p: (p["playerId"], p["namespace"]))
    return {"query": query.as_filters(), "orders": orders[:limit], "more": len(orders) > limit,
            "players": players}
