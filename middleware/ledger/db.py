"""Engine and session factory for the ledger; SQLite gets WAL and a busy timeout.

On PostgreSQL the pool and the connections follow the ``KB_DATABASE_*`` settings:
pool size, overflow, pool timeout, recycle, pre-ping, connect and statement timeouts, and whether psycopg
may prepare statements (not behind PgBouncer in transaction mode: docs/pgbouncer-sentinel.md).
"""
from __future__ import annotations

import os
import time

import psycopg

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.orm import sessionmaker


IDLE_SINCE = "kb_idle_since"


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


def ping_idle(engine: Engine, idle_seconds: float) -> None:
    """Pre-ping only a connection that sat in the pool ``idle_seconds`` or more (``KB_DATABASE_PRE_PING_IDLE``):
    one returned moments ago was alive then, and under load this spares a round trip per checkout. A ping that
    fails raises DisconnectionError, on which the pool discards the connection and checks out another (SQLAlchemy's
    recipe for pessimistic disconnect handling)."""
    def checkin(_dbapi_connection, record):
        if record is not None:
            record.info[IDLE_SINCE] = time.monotonic()

    def checkout(dbapi_connection, record, _proxy):
        since = record.info.get(IDLE_SINCE)
        if since is None or time.monotonic() - since < idle_seconds:
            return
        try:
            with dbapi_connection.cursor() as cursor:
                cursor.execute("SELECT 1")
            if not dbapi_connection.autocommit:
                dbapi_connection.rollback()   # the ping's implicit transaction: not left open
        except (psycopg.Error, OSError) as exc:  # a dropped connection: the pool replaces it
            raise DisconnectionError(str(exc)) from exc

    event.listen(engine, "checkin", checkin)
    event.listen(engine, "checkout", checkout)


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
        ping_idle(engine, settings.database_pre_ping_idle)
    if settings.database_statement_timeout > 0:
        event.listen(engine, "begin", _statement_timeout(max(1, round(settings.database_statement_timeout * 1000))))
    return engine


def make_sessionmaker(engine: Engine) -> sessionmaker:
    return sessionmaker(bind=engine, expire_on_commit=False)


def dispose_after_fork(engine: Engine) -> None:
    """A forked child must not reuse its parent's pooled connections."""
    engine.dispose(close=False)
