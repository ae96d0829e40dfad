"""Engine and session factory for the ledger; SQLite gets WAL and a busy timeout.

On PostgreSQL the pool and the connections follow the ``KB_DATABASE_*`` settings: pool size, overflow,
pool timeout, recycle, pre-ping (of a connection idle for a while), connect and statement timeouts, and whether
psycopg may prepare statements (not behind PgBouncer in transaction mode: docs/pgbouncer-sentinel.md).
"""
from __future__ import annotations

import os
import time

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.orm import sessionmaker


IDLE_SINCE = "kb_idle_since"
# an engine execution option: each transaction begins with statements of its own (``SET LOCAL statement_timeout``),
# which a statement autocommitted on its own would go without (``prepared.execute`` then runs it in a transaction)
BEGIN_STATEMENTS = "kb_begin_statements"


def normalise_url(url: str) -> str:
    """Accept plain postgres:// / postgresql:// URLs and use psycopg 3 for them."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


def _sqlite_pragmas(dbapi_connection, _record):
    # Let SQLAlchemy, not pysqlite, say when transactions begin: pysqlite's own handling turns a
    # SAVEPOINT outside a transaction into a commit point and breaks nested transactions.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _sqlite_begin(connection):
    # IMMEDIATE: take the write lock up front, so two transactions never both read and then
    # fail to upgrade to writing ("database is locked"); they queue on busy_timeout instead.
    connection.exec_driver_sql("BEGIN IMMEDIATE")


def connect_args(settings) -> dict:
    """psycopg 3's connection arguments from the ``KB_DATABASE_*`` settings: ``prepare_threshold=None``
    turns prepared statements off."""
    args: dict = {"connect_timeout": settings.database_connect_timeout}
    if not settings.database_prepared_statements:
        args["prepare_threshold"] = None
    return args


def _statement_timeout(milliseconds: int):
    """``SET LOCAL`` at the start of each transaction: right in every PgBouncer mode (a session-level ``SET``
    would stay on a server connection other clients then get, and PgBouncer refuses the ``options``
    startup parameter). An autocommitted statement runs without it."""
    statement = f"SET LOCAL statement_timeout = {milliseconds}"

    def on_begin(connection):
        if connection.get_execution_options().get("isolation_level") != "AUTOCOMMIT":
            connection.exec_driver_sql(statement)
    return on_begin


def _ping_when_idle(engine: Engine, idle_seconds: float) -> None:
    """Pre-ping only a connection that sat in the pool longer than ``idle_seconds``: one returned moments ago
    was just working, and a busy process (a worker running job after job) spares a round trip per checkout.
    A failed ping is a DisconnectionError: the pool replaces the connection (SQLAlchemy's pessimistic
    disconnect handling); a connection dropped while in use invalidates the pool as it always does."""
    dialect = engine.dialect

    @event.listens_for(engine, "checkin")
    def _returned(_dbapi_connection, record) -> None:
        if record is not None:
            record.info["kb_idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _check(dbapi_connection, record, _proxy) -> None:
        since = record.info.pop("kb_idle_since", None)
        if since is None or time.monotonic() - since <= idle_seconds:  # new, or back within the window
            return
        try:
            dialect.do_ping(dbapi_connection)
        except dialect.loaded_dbapi.Error as exc:
            if dialect.is_disconnect(exc, dbapi_connection, None):
                raise DisconnectionError(str(exc)) from exc
            raise


def make_engine(url: str, settings=None) -> Engine:
    """The ledger's engine; on PostgreSQL its pool follows ``settings`` (SQLAlchemy's defaults without: the
    migrations' short-lived engine)."""
    url = normalise_url(url)
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "begin", _sqlite_begin)
        return engine
    if settings is None:
        return create_engine(url, pool_pre_ping=True)
    idle_ping = settings.database_pre_ping and settings.database_pre_ping_idle > 0
    engine = create_engine(url, pool_size=settings.database_pool_size, max_overflow=settings.database_max_overflow,
                           pool_timeout=settings.database_pool_timeout, pool_recycle=settings.database_pool_recycle,
                           pool_pre_ping=settings.database_pre_ping and not idle_ping,
                           connect_args=connect_args(settings))
    if idle_ping:
        _ping_when_idle(engine, settings.database_pre_ping_idle)
    if settings.database_statement_timeout > 0:
        event.listen(engine, "begin", _statement_timeout(max(1, round(settings.database_statement_timeout * 1000))))
        engine.update_execution_options(**{BEGIN_STATEMENTS: True})
    return engine


def make_sessionmaker(engine: Engine) -> sessionmaker:
    return sessionmaker(bind=engine, expire_on_commit=False)


def dispose_after_fork(engine: Engine) -> None:
    """A forked child must not reuse its parent's pooled connections."""
    engine.dispose(close=False)
