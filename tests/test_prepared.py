"""Prebuilt statements on the psycopg connection (middleware/ledger/prepared.py), PostgreSQL only: a single
statement autocommitted unless each transaction must begin with a statement timeout, errors raised as SQLAlchemy
raises them, literals and IN lists bound by the helper, and the hot statements short enough for psycopg to parse
once."""
from __future__ import annotations

import dataclasses

import pytest
from psycopg import _queries
from sqlalchemy import bindparam, select, text
from sqlalchemy.exc import IntegrityError

from middleware.ledger import prepared
from middleware.ledger.db import make_engine
from middleware.ledger.models import Fulfilment
from middleware.ledger.prepared import Prepared
from middleware.orders import attempt_core, attempt_pg, order_insert

F = Fulfilment.__table__


@pytest.fixture
def engine(services):
    if services.engine.dialect.name != "postgresql":
        pytest.skip("the driver-level statements are PostgreSQL's")
    return services.engine


def _count(engine, name: str) -> int:
    with engine.connect() as connection:
        return connection.execute(text("SELECT count(*) FROM kb_test_prepared WHERE name = :n"), {"n": name}).scalar()


@pytest.fixture
def scratch(engine):
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE IF NOT EXISTS kb_test_prepared (name TEXT PRIMARY KEY)"))
        connection.execute(text("DELETE FROM kb_test_prepared"))
    yield Prepared("INSERT INTO kb_test_prepared (name) VALUES (%(name)s)")
    with engine.begin() as connection:
        connection.execute(text("DROP TABLE kb_test_prepared"))


def test_autocommit_commits_the_statement_alone_and_gives_the_connection_back_as_it_was(engine, scratch):
    with engine.connect() as connection:
        prepared.execute(connection, scratch, {"name": "a"}, autocommit=True)
        assert _count(engine, "a") == 1  # seen from another connection before any commit
        assert not connection.in_transaction()
        assert connection.connection.driver_connection.autocommit is False
        connection.rollback()
    assert _count(engine, "a") == 1


def test_without_autocommit_it_joins_the_connections_transaction(engine, scratch):
    with engine.connect() as connection:
        prepared.execute(connection, scratch, {"name": "b"}, autocommit=False)
        assert connection.in_transaction() and _count(engine, "b") == 0
        connection.rollback()
    assert _count(engine, "b") == 0


def test_a_statement_timeout_set_per_transaction_applies_to_an_autocommitted_statement(services, engine):
    settings = dataclasses.replace(services.settings, database_statement_timeout=0.25)
    timed = make_engine(engine.url.render_as_string(hide_password=False), settings)
    try:
        with timed.connect() as connection:
            shown = prepared.execute(connection, Prepared("SELECT current_setting('statement_timeout')"), {},
                                     autocommit=True).fetchone()[0]
            connection.commit()
        assert shown == "250ms"
    finally:
        timed.dispose()


def test_errors_are_raised_as_sqlalchemy_raises_them(engine, scratch):
    with engine.connect() as connection:
        prepared.execute(connection, scratch, {"name": "c"}, autocommit=True)
        with pytest.raises(IntegrityError):
            prepared.execute(connection, scratch, {"name": "c"}, autocommit=True)
        connection.rollback()
        prepared.execute(connection, scratch, {"name": "d"}, autocommit=True)  # the connection is still usable
    assert _count(engine, "d") == 1


def test_a_constructs_literals_and_in_lists_are_bound_by_the_helper(engine):
    statement = select(F.c.id).where(F.c.state.in_(["A", "B"]), F.c.id == bindparam("p_id"))
    sql, constants = Prepared(statement).compiled(engine.dialect)
    assert sorted(constants.values()) == ["A", "B"] and "p_id" not in constants and "POSTCOMPILE" not in sql
    with engine.connect() as connection:
        assert prepared.execute(connection, Prepared(statement), {"p_id": "none"}, autocommit=True).fetchall() == []


def test_the_hot_statements_are_short_enough_for_psycopg_to_parse_once(engine):
    """A statement longer than psycopg's cache limit is parsed again on every execution (a tenth of a PUT)."""
    statements = [order_insert.pg_statement(), attempt_core.CLAIM_PG,
                  *(attempt_pg.results_statement(attempt_core.RESULTS, attempt_core.ITEM_COLUMNS, n) for n in (1, 3))]
    for statement in statements:
        sql, _ = statement.compiled(engine.dialect)
        assert len(sql.encode()) <= _queries.MAX_CACHED_STATEMENT_LENGTH

