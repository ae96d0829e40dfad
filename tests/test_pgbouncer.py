"""PgBouncer (Debian's) in transaction and in session mode in front of PostgreSQL (the tests' own with
KB_TEST_DATABASE_URL, else a cluster this module starts with Debian's initdb): the fulfil PUT, Stripe webhooks,
the workers and the ops API all work through it and nothing answers 500.

Before KB_DATABASE_PREPARED_STATEMENTS, transaction mode broke: psycopg prepares a statement it has run five
times on a connection (``_pg3_0``...), and PgBouncer hands the next transaction to another server connection
that has one by that name already (``DuplicatePreparedStatement``) or none (``InvalidSqlStatementName``): 500s
on fulfil PUTs."""
from __future__ import annotations

import shutil
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from sqlalchemy import select, text

from app import create_app
from middleware.ledger.models import Fulfilment
from workers import runtime

from middleware.ledger import migrate

from tests.support.orders_flow import AUTH, drain, empty_ledger, fulfil_path
from tests.support.ops_ledger import key
from tests.support.process_servers import start_pgbouncer, start_postgres
from tests.support.stripe_events import completed, post

pytestmark = pytest.mark.processes

ORDERS = 40
THREADS = 8


@pytest.fixture(scope="module")
def postgres(database_url):
    """The tests' PostgreSQL, or one of this module's own (migrated) when the tests run on SQLite. Its
    directory is outside pytest's (private to root; PostgreSQL then runs as postgres)."""
    if database_url.startswith("postgresql"):
        yield database_url
        return
    directory = Path(tempfile.mkdtemp(prefix="kb-test-postgres-"))
    try:
        server, url = start_postgres(directory)
        try:
            migrate.upgrade(url)
            yield url
        finally:
            server.stop()
    finally:
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def postgres_url(postgres, clean):
    empty_ledger(postgres)  # (the tests' own was emptied by `clean` already)
    return postgres


@pytest.fixture(params=["transaction", "session"])
def bounced(request, tmp_path, postgres_url, settings_overrides):
    """The app with its ledger reached through a PgBouncer in the given pool mode."""
    mode = request.param
    # Session mode gives each client connection a server connection of its own: its pool must hold every
    # connection the app may open (pool size + overflow). Transaction mode shares a few among them.
    server, url = start_pgbouncer(tmp_path, postgres_url, mode, pool_size=2 if mode == "transaction" else 8)
    overrides = dict(settings_overrides, database_url=url, database_pool_size=4, database_max_overflow=4)
    if mode == "transaction":
        overrides["database_prepared_statements"] = False  # what docs/pgbouncer-sentinel.md says to set
    app = create_app(overrides)
    app.config["TESTING"] = True
    runtime.use(app)
    try:
        yield app
    finally:
        runtime.use(None)
        app.extensions["kraty_bridge"].close()
        server.stop()


def put(app, txn: str, user: str = "player-pgb"):
    with app.test_client() as client:
        return client.put(fulfil_path(user, txn), json={"items": [{"itemSku": "gems_100", "quantity": 1}]},
                          headers=AUTH)


def test_fulfil_webhooks_workers_and_ops_api_through_pgbouncer(bounced, emulator, stripe_fake):
    app = bounced
    svc = app.extensions["kraty_bridge"]
    # Concurrent fulfil PUTs, each order twice (the second answers the stored result): many transactions on
    # a few pooled connections, over fewer server connections.
    txns = [f"pgb-{n}" for n in range(ORDERS)]
    with ThreadPoolExecutor(THREADS) as pool:
        answers = list(pool.map(lambda txn: put(app, txn), txns + txns))
    statuses = sorted({r.status_code for r in answers})
    assert statuses == [200], [r.get_data(as_text=True) for r in answers if r.status_code != 200][:3]
    assert all(r.get_json()["state"] == "FULFILLED" for r in answers)

    # Store webhooks (recorded by one autocommitted INSERT, enqueued), then the workers.
    client = app.test_client()
    sessions = [stripe_fake.session(client_reference_id="player-pgb", line_items=[{"price": "price_gems_100",
                                                                                  "quantity": 1}])
                for _ in range(3)]
    for session in sessions:
        assert post(client, completed(session)).status_code == 200
    drain(svc.redis)
    with svc.session() as db:
        states = db.execute(select(Fulfilment.transaction_id, Fulfilment.state)).all()
    assert {state for _txn, state in states} == {"FULFILLED"}
    assert len(states) == ORDERS + len(sessions)

    # Every order granted once in Kraty.
    granted = [e["sourceRefId"] for e in emulator.ledger(player="player-pgb")]
    assert sorted(granted) == sorted(txns + [s["id"] for s in sessions])

    # The ops API: a list, a page of detail, an audited action.
    headers = key(svc, "operator")
    listed = client.get("/v1/fulfilments", query_string={"limit": 100}, headers=headers)
    assert listed.status_code == 200 and len(listed.get_json()["items"]) == len(states)
    order = listed.get_json()["items"][0]["id"]
    for _ in range(6):  # the same statements again and again on one connection: past psycopg's prepare threshold
        assert client.get(f"/v1/fulfilments/{order}", headers=headers).status_code == 200
    retried = client.post(f"/v1/fulfilments/{order}/actions/retry", json={"reason": "checked with the player"},
                           headers=headers)
    assert retried.status_code == 409, retried.get_data(as_text=True)  # nothing to retry: answered, audited nothing
    assert client.get("/readyz").status_code == 200


def test_statement_timeout_is_set_per_transaction(postgres_url, settings_overrides, tmp_path):
    """KB_DATABASE_STATEMENT_TIMEOUT applies inside every transaction, through PgBouncer in transaction mode, and
    to the ops reads (which are in autocommit only without it)."""
    server, url = start_pgbouncer(tmp_path, postgres_url, "transaction")
    app = create_app(dict(settings_overrides, database_url=url, database_statement_timeout=0.25,
                          database_prepared_statements=False))
    svc = app.extensions["kraty_bridge"]
    try:
        with svc.session() as db:
            assert db.execute(text("SHOW statement_timeout")).scalar() == "250ms"
        assert not svc.autocommit_reads
        with svc.read_session() as db:   # the ops reads keep their transaction, so the timeout applies to them
            assert db.execute(text("SHOW statement_timeout")).scalar() == "250ms"
    finally:
        svc.close()
        server.stop()


def test_pool_exhausted_answers_503_not_500(postgres_url, settings_overrides):
    """KB_DATABASE_POOL_SIZE / _MAX_OVERFLOW / _POOL_TIMEOUT shape the pool; a request that finds no free
    connection in time answers 503 with Retry-After (it was a 500: SQLAlchemy's pool TimeoutError)."""
    app = create_app(dict(settings_overrides, database_url=postgres_url, database_pool_size=1,
                          database_max_overflow=0, database_pool_timeout=0.2))
    svc = app.extensions["kraty_bridge"]
    try:
        assert (svc.engine.pool.size(), svc.engine.pool._max_overflow) == (1, 0)
        with svc.engine.connect():  # the one connection, held
            response = app.test_client().put(fulfil_path("player-pool", "pool-1"),
                                             json={"items": [{"itemSku": "gems_100", "quantity": 1}]}, headers=AUTH)
        assert response.status_code == 503 and response.headers["Retry-After"] == "5"
        assert response.get_json()["errorCode"] == 20000
    finally:
        svc.close()
