"""The KB_DATABASE_* settings reach the PostgreSQL engine's pool and psycopg's connection arguments (it was
hard-coded: pool_size=5, max_overflow=10). Nothing connects here; test_pgbouncer.py runs them for real."""
from __future__ import annotations

import pytest


from config.settings import SettingsError, load_settings
from middleware.ledger.db import connect_args, make_engine

URL = "postgresql+psycopg://kraty_bridge@127.0.0.1:6432/kraty_bridge"


def test_defaults_are_todays_pool_with_prepared_statements_on():
    settings = load_settings({})
    engine = make_engine(URL, settings)
    assert (engine.pool.size(), engine.pool._max_overflow, engine.pool._timeout) == (5, 10, 30.0)
    # pre-ping is on, for a connection idle over 1 s (a checkout listener, not SQLAlchemy's ping on every checkout)
    assert engine.pool._recycle == 1800.0 and engine.pool._pre_ping is False
    assert settings.database_pre_ping and settings.database_pre_ping_idle == 1.0
    assert len(engine.pool.dispatch.checkout) == 1 and len(engine.pool.dispatch.checkin) == 1
    assert connect_args(settings) == {"connect_timeout": 10}  # psycopg's default prepare_threshold (5)


def test_pre_ping_idle_0_pings_before_every_use():
    engine = make_engine(URL, load_settings({"KB_DATABASE_PRE_PING_IDLE": "0"}))
    assert engine.pool._pre_ping is True and not engine.pool.dispatch.checkout


def test_a_connection_dropped_while_idle_in_the_pool_is_replaced_not_used(database_url):
    if not database_url.startswith("postgresql"):
        pytest.skip("PostgreSQL: its server can end one connection")
    engine = make_engine(database_url, load_settings({"KB_DATABASE_PRE_PING_IDLE": "0.000001"}))
    try:
        with engine.connect() as connection:
            pid = connection.exec_driver_sql("SELECT pg_backend_pid()").scalar()
        with make_engine(database_url).connect() as admin:  # the server drops it while it sits in the pool
            assert admin.exec_driver_sql(f"SELECT pg_terminate_backend({pid})").scalar() is True
        with engine.connect() as connection:  # the ping finds it gone: a new connection, no error
            assert connection.exec_driver_sql("SELECT pg_backend_pid()").scalar() != pid
    finally:
        engine.dispose()


def test_every_pool_setting_is_applied():
    settings = load_settings({"KB_DATABASE_POOL_SIZE": "3", "KB_DATABASE_MAX_OVERFLOW": "0",
                              "KB_DATABASE_POOL_TIMEOUT": "2.5", "KB_DATABASE_POOL_RECYCLE": "300",
                              "KB_DATABASE_PRE_PING": "false", "KB_DATABASE_CONNECT_TIMEOUT": "4",
                              "KB_DATABASE_PREPARED_STATEMENTS": "false"})
    engine = make_engine(URL, settings)
    assert (engine.pool.size(), engine.pool._max_overflow, engine.pool._timeout) == (3, 0, 2.5)
    assert engine.pool._recycle == 300.0 and engine.pool._pre_ping is False
    assert connect_args(settings) == {"connect_timeout": 4, "prepare_threshold": None}


@pytest.mark.parametrize("name, raw", [("KB_DATABASE_POOL_SIZE", "0"), ("KB_DATABASE_MAX_OVERFLOW", "-1"),
                                       ("KB_DATABASE_POOL_TIMEOUT", "soon"), ("KB_DATABASE_PRE_PING", "maybe"),
                                       ("KB_DATABASE_STATEMENT_TIMEOUT", "-5"), ("KB_DATABASE_PRE_PING_IDLE", "-1")])
def test_bad_values_stop_the_start_naming_the_setting(name, raw):
    with pytest.raises(SettingsError, match=name):
        load_settings({name: raw})
