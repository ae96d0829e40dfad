"""The process's long-lived parts, built once by the app factory: ledger engine, Redis, catalog, Kraty clients,
and the enqueue side of the queue (``jobs``: the port in ``middleware/orders/jobs.py``, given by the factory)."""
from __future__ import annotations

import os
import socket
from collections.abc import Callable
from contextlib import contextmanager

from flask import current_app
from redis import Redis
from sqlalchemy.orm import Session

from config.catalog import Catalog
from config.settings import Settings
from config.sinks import Sinks
from config.storefronts import Storefronts

from middleware.kraty.client import KratyClient
from middleware.ledger.db import dispose_after_fork, make_engine, make_sessionmaker
from middleware.orders.jobs import Jobs
from middleware.redis_client import connect as connect_redis
from middleware.stores.app_store_api import AppStoreApi
from middleware.stores.app_store_verify import AppStoreVerifiers
from middleware.stores.google_play_api import GooglePlayApi
from middleware.stores.google_push_verify import PushVerifier
from middleware.stores.stripe_api import StripeApi

STORE_API_TIMEOUT = 10.0  # seconds, per call to a store's API (Stripe...)


class Services:
    def __init__(self, settings: Settings, catalog: Catalog, storefronts: Storefronts, sinks: Sinks | None = None, *,
                 jobs: Callable[[Services], Jobs]):
        """``jobs``: builds the enqueue side from these services (``workers.queues.RqJobs``, in app.py)."""
        self.settings = settings
        self.catalog = catalog
        self.storefronts = storefronts
        self.sinks = sinks if sinks is not None else Sinks()
        self.engine = make_engine(settings.database_url, settings)
        self.sessions = make_sessionmaker(self.engine)
        self._redis: Redis | None = None
        self._kraty: dict[str, KratyClient] = {}
        self.stripe_api = StripeApi(settings.stripe_api_base, timeout=STORE_API_TIMEOUT)
        self.app_store = AppStoreVerifiers(catalog, settings.apple_root_sha256)  # refuses unpinned Production roots
        self.app_store_api = AppStoreApi(settings.apple_api_base, settings.apple_sandbox_api_base, STORE_API_TIMEOUT)
        self.google_play_api = GooglePlayApi(settings.google_api_base, settings.google_token_uri, STORE_API_TIMEOUT)
        self.google_push = PushVerifier.from_settings(settings)
        self.identity = f"{socket.gethostname()}:{os.getpid()}"
        self.jobs: Jobs = jobs(self)
        os.register_at_fork(after_in_child=self._after_fork)

    def _after_fork(self) -> None:
        dispose_after_fork(self.engine)
        self._redis = None
        self.identity = f"{socket.gethostname()}:{os.getpid()}"

    @contextmanager
    def session(self):
        session: Session = self.sessions()
        try:
            yield session
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    @contextmanager
    def read_session(self):
        """A session for reads (the ops lists, search, an order's detail, the home page's counts, an API key's
        lookup; a write made there, such as the key's "last used" time, is one statement its caller commits). On
        PostgreSQL its connection is in autocommit, so each statement is one round trip, with no BEGIN before
        it and no ROLLBACK after (under READ COMMITTED a transaction gives each statement its own snapshot
        anyway, so a read loses nothing). With ``KB_DATABASE_STATEMENT_TIMEOUT`` set (sent per transaction,
        ``SET LOCAL``), and on SQLite, an ordinary session: the timeout keeps applying to every read."""
        if not self.autocommit_reads:
            with self.session() as session:
                yield session
            return
        with self.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection, \
                self.sessions(bind=connection) as session:
            yield session

    @property
    def autocommit_reads(self) -> bool:
        """Whether ``read_session`` reads in autocommit (PostgreSQL with no per-transaction statement timeout)."""
        return self.engine.dialect.name == "postgresql" and not self.settings.database_statement_timeout > 0

    @property
    def redis(self) -> Redis:
        if self._redis is None:
            self._redis = connect_redis(self.settings.redis_url, self.settings.redis_sentinel_password,
                                        socket_timeout=5, socket_connect_timeout=2, health_check_interval=30)
        return self._redis

    def kraty(self, namespace: str) -> KratyClient:
        client = self._kraty.get(namespace)
        if client is None:
            game = self.catalog.game(namespace)
            client = KratyClient(game.kraty_base_url, game.server_key,
                                 (self.settings.kraty_connect_timeout, self.settings.kraty_read_timeout))
            self._kraty[namespace] = client
        return client

    def close(self) -> None:
        self.engine.dispose()
        if self._redis is not None:
            self._redis.close()


def services() -> Services:
    """The current app's services (inside a request, a CLI command or a job's app context)."""
    return current_app.extensions["kraty_bridge"]
