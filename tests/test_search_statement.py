"""The search as one statement (middleware/ops/search_sql.py) and the ops reads' autocommit sessions: one round
trip for every way an order is found and the players a prefix starts; an order found two ways says the first;
``more`` counts the player's own orders beyond the page; a read session on PostgreSQL sends no BEGIN."""
from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import event

from middleware import ops
from middleware.ledger.models import Fulfilment, PaymentRef, utcnow
from middleware.ops import search as ops_search
from middleware.ops import search_sql

VIEWER = ops.Actor("key:viewer", "viewer")


def _order(session, txn: str, player: str, minutes_ago: int = 0, namespace: str = "demo") -> str:
    when = utcnow() - timedelta(minutes=minutes_ago)
    f = Fulfilment(namespace=namespace, source="stripe", transaction_id=txn, player_id=player, state="FULFILLED",
                   request_hash="h", lines=[], created_at=when, updated_at=when, state_changed_at=when)
    session.add(f)
    session.flush()
    return f.id


@pytest.fixture
def orders(services):
    """``x-1`` is one order's transaction id, another's player id, and both for a third; player ``x-1`` has
    four orders, ``x-2`` one."""
    with services.session() as s:
        named = {"txn only": _order(s, "x-1", "someone", 5), "player only": _order(s, "t-2", "x-1", 4),
                 "both": _order(s, "x-1b", "x-1", 3), "player again": _order(s, "t-4", "x-1", 2),
                 "player, paid": _order(s, "t-5", "x-1", 1), "other": _order(s, "t-6", "x-2", 0)}
        s.add(PaymentRef(source="stripe", ref="x-1", fulfilment_id=named["both"], created_at=utcnow()))
        s.commit()
    return named


def _statements(services, run) -> tuple[list[str], object]:
    seen: list[str] = []

    def note(_conn, _cursor, statement, *_):
        seen.append(statement)
    event.listen(services.engine, "before_cursor_execute", note)
    try:
        result = run()
    finally:
        event.remove(services.engine, "before_cursor_execute", note)
    return [s for s in seen if not s.lstrip().upper().startswith("BEGIN")], result


def test_every_way_and_the_players_come_from_one_statement(services, orders):
    def run():
        with services.read_session() as session:
            return ops_search.search(session, VIEWER, ops_search.SearchQuery(q="x-"))
    statements, found = _statements(services, run)
    assert len(statements) == 1, statements
    assert found["players"] == [{"namespace": "demo", "playerId": "x-1"}, {"namespace": "demo", "playerId": "x-2"}]


def test_an_order_found_two_ways_says_the_first(services, orders):
    with services.read_session() as session:
        found = ops_search.search(session, VIEWER, ops_search.SearchQuery(q="x-1"))
    how = {order["id"]: order["matchedBy"] for order in found["orders"]}
    assert how == {orders["txn only"]: "transactionId", orders["both"]: "paymentRef",
                   orders["player only"]: "playerId", orders["player again"]: "playerId",
                   orders["player, paid"]: "playerId"}
    assert [o["id"] for o in found["orders"]] == [orders[name] for name in (
        "player, paid", "player again", "both", "player only", "txn only")]   # newest first
    assert found["more"] is False and found["players"] == [{"namespace": "demo", "playerId": "x-1"}]


@pytest.mark.parametrize("limit, shown, more", [(2, ["player, paid", "player again"], True),
                                                (4, ["player, paid", "player again", "both", "player only"], True),
                                                (5, ["player, paid", "player again", "both", "player only",
                                                     "txn only"], False)])
def test_more_says_whether_any_way_found_more_than_the_page(services, orders, limit, shown, more):
    with services.read_session() as session:
        found = ops_search.search(session, VIEWER, ops_search.SearchQuery(q="x-1"), limit)
    assert [o["id"] for o in found["orders"]] == [orders[name] for name in shown] and found["more"] is more


def test_the_filters_and_the_keys_games_apply_to_every_way(services, orders):
    with services.session() as s:
        elsewhere = _order(s, "t-7", "x-1", 0, namespace="other")
        s.commit()
    limited = ops.Actor("key:demo", "viewer", ("demo",))
    with services.read_session() as session:
        everywhere = ops_search.search(session, VIEWER, ops_search.SearchQuery(q="x-1"))
        in_demo = ops_search.search(session, limited, ops_search.SearchQuery(q="x-1"))
        recent = ops_search.search(session, VIEWER, ops_search.SearchQuery(
            q="x-1", created_after=utcnow() - timedelta(minutes=3, seconds=30)))
    assert elsewhere in {o["id"] for o in everywhere["orders"]}
    assert elsewhere not in {o["id"] for o in in_demo["orders"]} and len(in_demo["orders"]) == 5
    assert {p["namespace"] for p in everywhere["players"]} == {"demo", "other"}
    assert in_demo["players"] == [{"namespace": "demo", "playerId": "x-1"}]
    assert {o["id"] for o in recent["orders"]} == {orders["both"], orders["player again"], orders["player, paid"],
                                                  elsewhere}


def test_one_statement_per_shape_is_built(services, orders):
    search_sql.statement.cache_clear()
    with services.read_session() as session:
        for q in ("x-1", "x-2", "t-5", "x-1"):
            ops_search.search(session, VIEWER, ops_search.SearchQuery(q=q))
        ops_search.search(session, VIEWER, ops_search.SearchQuery(q="x-1", state="FULFILLED"))
    assert search_sql.statement.cache_info().currsize == 2


def test_a_read_session_on_postgresql_is_in_autocommit(services):
    with services.read_session() as session:
        driver = session.connection().connection.driver_connection
        if services.engine.dialect.name != "postgresql":
            assert not services.autocommit_reads
            return
        assert services.autocommit_reads and driver.autocommit is True
    with services.session() as session:   # the connection back in the pool is an ordinary one again
        assert session.connection().connection.driver_connection.autocommit is False


def test_an_orders_detail_reads_the_order_items_and_history_in_two_statements(services, orders):
    def run():
        with services.read_session() as session:
            return ops.fulfilment_detail(session, VIEWER, orders["both"])
    statements, detail = _statements(services, run)
    assert detail["id"] == orders["both"] and detail["items"] == [] and detail["history"] == []
    assert [s.split("FROM", 1)[1].split()[0] for s in statements] == [
        "fulfilments", "fulfilment_history", "inbound_events", "outbound_events"], statements
