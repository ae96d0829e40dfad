"""Prebuilt statements run straight on a pooled connection's psycopg connection (PostgreSQL): the SQL text is
compiled once, the statement is prepared server-side (``prepare=True``, unless ``KB_DATABASE_PREPARED_STATEMENTS``
turned preparing off: psycopg then ignores it), and each execution skips SQLAlchemy's per-execution work (cache
lookup, bind and result processing). A single statement runs autocommitted: no BEGIN and COMMIT round trips,
and the statement is its own transaction (a data-modifying WITH takes effect whole or not at all).

Parameters are given as psycopg adapts them: aware datetimes, ``Json(...)`` for a JSON column (``json_param``).
A statement's text stays under psycopg's cache limit for parsed queries (4 kB) when it can: a longer one is
parsed again on every execution.
"""
from __future__ import annotations

import json
from datetime import datetime

from psycopg.types.json import Json
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError

from middleware.ledger.db import BEGIN_STATEMENTS


class Prepared:
    """A statement (a SQLAlchemy construct, or SQL text with ``%(name)s`` parameters) compiled once for psycopg:
    its SQL and the values of the parameters it binds itself (literals, IN lists)."""

    def __init__(self, statement):
        self.statement, self._compiled, self._names = statement, None, None

    def names(self, cursor) -> list[str]:
        """The names of the statement's result columns (psycopg's ``cursor.description`` costs more than the
        rows themselves: it is read once)."""
        if self._names is None:
            self._names = [column.name for column in cursor.description]
        return self._names

    def compiled(self, dialect) -> tuple[str, dict]:
        if self._compiled is None:
            if isinstance(self.statement, str):
                self._compiled = self.statement, {}
            else:
                compiled = self.statement.compile(dialect=dialect)
                given = {name for name, bind in compiled.binds.items() if bind.required}
                expanded = compiled.construct_expanded_state(dict.fromkeys(given))  # IN lists written out
                self._compiled = expanded.statement, {name: value for name, value in expanded.parameters.items()
                                                      if name not in given}
        return self._compiled


def execute(connection: Connection, prepared: Prepared, parameters: dict, *, autocommit: bool):
    """Run ``prepared`` on ``connection``'s psycopg connection: its cursor (rows, rowcount).

    ``autocommit``: the statement is its own transaction (``connection`` must not be in one) — unless the engine
    begins each transaction with a statement of its own (``KB_DATABASE_STATEMENT_TIMEOUT``): then, as without
    ``autocommit``, it runs in the connection's transaction (begun here if none is), which the caller commits.
    Calling ``connection.commit()`` after an autocommitted statement does nothing, so a caller commits either way.
    Errors are raised as SQLAlchemy raises them (a lost connection is invalidated)."""
    dialect = connection.dialect
    sql, constants = prepared.compiled(dialect)
    if autocommit and connection.get_execution_options().get(BEGIN_STATEMENTS):
        autocommit = False  # a transaction, so that what each one begins with (a statement timeout) applies
    if not autocommit and not connection.in_transaction():
        connection.begin()
    driver = connection.connection.driver_connection
    if autocommit:
        driver.autocommit = True
    try:
        return driver_execute(connection, sql, {**constants, **parameters} if constants else parameters)
    finally:
        if autocommit and not driver.closed:
            driver.autocommit = False  # back as SQLAlchemy left it


def driver_execute(connection: Connection, sql: str, parameters: dict):
    """``sql`` run prepared on the pooled connection's psycopg connection (its cursor), as it stands (in the
    connection's transaction, or autocommitted if the caller set that); an error raised as SQLAlchemy would
    raise it (the API and the relay map those), a lost connection invalidated."""
    dialect, driver = connection.dialect, connection.connection.driver_connection
    try:
        return driver.execute(sql, parameters, prepare=True)
    except dialect.loaded_dbapi.Error as exc:
        lost = dialect.is_disconnect(exc, driver, None)
        if lost:
            connection.invalidate(exc)
        raise DBAPIError.instance(sql, None, exc, dialect.loaded_dbapi.Error, connection_invalidated=lost,
                                  dialect=dialect) from exc


def _json_default(value):
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def json_text(value) -> str:
    """``value`` as JSON text for a json parameter (datetimes as ISO 8601, which PostgreSQL reads back)."""
    return json.dumps(value, default=_json_default, separators=(",", ":"))


def json_param(value):
    """A JSON column's value as psycopg binds it (None stays NULL)."""
    return None if value is None else Json(value)
