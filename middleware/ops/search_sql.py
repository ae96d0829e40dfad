"""The search's one statement: every indexed store id, the player id exactly and the player-id prefix, in one
round trip, built once per shape and compiled once (SQLAlchemy's statement cache), its values bound.

The rows are the found orders (the summary's columns and ``how``: a rank in ``WAYS``) and, ``how`` being
``PLAYER_ROW``, the players the prefix starts (only ``namespace`` and ``player_id`` set). A shape is which
filters are given: the order id looked up or not (no order id is longer than 32), the game, the state, the
time range's two ends, the games the key is limited to, whether the prefix has an upper bound, the dialect.
"""
from __future__ import annotations

from functools import lru_cache

from sqlalchemy import Integer, String, bindparam, func, literal_column, null, select, text, union_all

from middleware.ledger.models import Fulfilment, PaymentRef, Reversal
from middleware.ledger.model_base import UTCDateTime
from middleware.ops.queries import SUMMARY_COLUMNS

PER_LOOKUP = 200       # orders one id may name (a purchase token's renewals...) read per lookup (ops MAX_PAGE)
WAYS = ("orderId", "transactionId", "playerKey", "paymentRef", "reversal", "playerId")  # named two ways: the first
PLAYER_ROW = -1        # ``how`` of a player row

f = Fulfilment
COLUMNS = SUMMARY_COLUMNS   # what ops.queries.summary reads, in this order in every row

# PostgreSQL: the (player_id text_pattern_ops, namespace) index walked one distinct id at a time, then each id's
# games one at a time (loose index scans): a short prefix costs a probe per player and game listed, not one per
# order. ``lo``: the prefix; ``hi``: the least string above every string starting with it; ``pat``: it, LIKE-escaped.
_PG_PLAYERS = """
WITH RECURSIVE p(player_id) AS (
  (SELECT player_id FROM fulfilments WHERE player_id ~>=~ :lo {hi} AND player_id LIKE :pat ESCAPE '\\' {ns}
   ORDER BY player_id USING ~<~ LIMIT 1)
  UNION ALL
  SELECT (SELECT f.player_id FROM fulfilments f WHERE f.player_id ~>~ p.player_id {fhi}
          AND f.player_id LIKE :pat ESCAPE '\\' {fns} ORDER BY f.player_id USING ~<~ LIMIT 1)
  FROM p WHERE p.player_id IS NOT NULL),
ids AS (SELECT player_id FROM p WHERE player_id IS NOT NULL LIMIT :players),
g(player_id, namespace) AS (
  SELECT ids.player_id, (SELECT f.namespace FROM fulfilments f WHERE f.player_id = ids.player_id {fns}
                         ORDER BY f.namespace LIMIT 1) FROM ids
  UNION ALL
  SELECT g.player_id, (SELECT f.namespace FROM fulfilments f WHERE f.player_id = g.player_id
                       AND f.namespace > g.namespace {fns} ORDER BY f.namespace LIMIT 1)
  FROM g WHERE g.namespace IS NOT NULL)
SELECT namespace, player_id FROM g WHERE namespace IS NOT NULL
"""


def _order_filters(namespace: bool, state: bool, after: bool, before: bool, limited: bool) -> list:
    """The query's game, state and time range and the key's games, each a bound value (``namespace``,
    ``state``, ``after``, ``before``, ``namespaces``)."""
    where = []
    if namespace:
        where.append(f.namespace == bindparam("namespace", type_=String))
    if state:
        where.append(f.state == bindparam("state", type_=String))
    if limited:
        where.append(f.namespace.in_(bindparam("namespaces", expanding=True)))
    if after:
        where.append(f.created_at >= bindparam("after", type_=UTCDateTime))
    if before:
        where.append(f.created_at < bindparam("before", type_=UTCDateTime))
    return where


def _players(postgresql: bool, bounded: bool, in_games: bool):
    """(namespace, player_id) of the players whose id starts with the prefix, at most ``players`` ids; their
    games: ``player_namespaces`` when ``in_games``."""
    if postgresql:
        sql = _PG_PLAYERS.format(hi="AND player_id ~<~ :hi" if bounded else "",
                                 fhi="AND f.player_id ~<~ :hi" if bounded else "",
                                 ns="AND namespace = ANY(:player_namespaces)" if in_games else "",
                                 fns="AND f.namespace = ANY(:player_namespaces)" if in_games else "")
        return text(sql).columns(namespace=String, player_id=String).subquery("players")
    ids = select(f.player_id).where(f.player_id.like(bindparam("pat", type_=String), escape="\\"),
                                    f.player_id >= bindparam("lo", type_=String))
    if bounded:
        ids = ids.where(f.player_id < bindparam("hi", type_=String))
    pairs = select(f.namespace, f.player_id)
    if in_games:
        ids = ids.where(f.namespace.in_(bindparam("player_namespaces", expanding=True)))
        pairs = pairs.where(f.namespace.in_(bindparam("player_namespaces", expanding=True)))
    ids = ids.distinct().order_by(f.player_id).limit(bindparam("players", type_=Integer)).scalar_subquery()
    return pairs.where(f.player_id.in_(ids)).distinct().subquery("players")


@lru_cache(maxsize=512)
def statement(postgresql: bool, with_order_id: bool, namespace: bool, state: bool, after: bool, before: bool,
              limited: bool, bounded: bool, in_games: bool):
    """The search of one shape. Its values: ``q``, ``rows`` (orders at most: the page and one more),
    ``lo``/``pat``/``hi``/``players`` (the prefix), the filters' (``_order_filters``), ``player_namespaces``.

    Each store id's lookup reads at most ``PER_LOOKUP`` orders; the player's own orders are read newest first
    within the filters, ``rows`` at most; an order found two ways keeps the first (``WAYS``); the orders then
    kept are the newest ``rows`` within the filters."""
    q = bindparam("q", type_=String)
    rows = bindparam("rows", type_=Integer)
    where = _order_filters(namespace, state, after, before, limited)
    lookups = {"orderId": select(f.id.label("id")).where(f.id == q),
               "transactionId": select(f.id.label("id")).where(f.transaction_id == q),
               "playerKey": select(f.id.label("id")).where(f.player_key == q),
               "paymentRef": select(PaymentRef.fulfilment_id.label("id")).where(
                   PaymentRef.ref == q, PaymentRef.fulfilment_id.is_not(None)),
               "reversal": select(Reversal.fulfilment_id.label("id")).where(
                   Reversal.store_ref == q, Reversal.fulfilment_id.is_not(None))}
    if not with_order_id:
        del lookups["orderId"]
    parts = [stmt.limit(PER_LOOKUP) for stmt in lookups.values()]
    parts.append(select(f.id.label("id")).where(f.player_id == q, *where)
                 .order_by(f.created_at.desc(), f.id.desc()).limit(rows))
    hows = [WAYS.index(how) for how in lookups] + [WAYS.index("playerId")]
    matches = union_all(*(select(part.subquery().c.id, literal_column(str(how)).label("how"))
                          for part, how in zip(parts, hows, strict=True))).subquery()
    found = select(matches.c.id, func.min(matches.c.how).label("how")).group_by(matches.c.id).subquery()
    orders = select(*COLUMNS, found.c.how).join(found, f.id == found.c.id).where(*where) \
        .order_by(f.created_at.desc(), f.id.desc()).limit(rows).subquery("orders")
    players = _players(postgresql, bounded, in_games)
    named = {"namespace": players.c.namespace, "player_id": players.c.player_id}
    player_rows = select(*(named.get(column.key, null()).label(column.key) for column in COLUMNS),
                         literal_column(str(PLAYER_ROW), Integer).label("how"))
    return union_all(select(orders), player_rows)
