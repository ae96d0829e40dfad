"""The ingest floors: the least a durable ingest can do, on the real endpoints' paths, with none of our code.

    gunicorn bench.floor_app:app     (served with exactly the settings the real app gets;
                                      KB_DATABASE_URL, and KB_BENCH_FLOOR_KRATY for the fulfil PUT)

- every webhook / receipt POST: commit one INSERT of the raw body (keyed by its SHA-256, unique index, ON
  CONFLICT DO NOTHING) into ``bench_floor_events``, then answer a small JSON 200 — persist before
  acknowledging, the bare minimum of the real endpoints' job;
- the fulfil PUT: the same INSERT, then one HTTP call to the Kraty emulator (a wallet credit with a fresh
  idempotency key, on a pooled keep-alive ``requests`` session per thread, as the app's Kraty client),
  then the answer: what the AccelByte contract requires before it may answer.

The engine is plain SQLAlchemy + psycopg 3 with a pool of 5 and no pre-ping; the INSERT is autocommitted (one
round trip). The table is created by the benchmark (``create_table``) before gunicorn starts: nothing here
does I/O at import beyond building the engine (which connects lazily).
"""
from __future__ import annotations

import hashlib
import os
import threading
import uuid

import requests
from flask import Flask, request
from sqlalchemy import create_engine, text

TABLE = "bench_floor_events"
DDL = {"postgresql": f"CREATE TABLE IF NOT EXISTS {TABLE} (id BIGSERIAL PRIMARY KEY, key TEXT NOT NULL, "
                     "received_at TIMESTAMPTZ NOT NULL DEFAULT now(), body BYTEA NOT NULL)",
       "sqlite": f"CREATE TABLE IF NOT EXISTS {TABLE} (id INTEGER PRIMARY KEY AUTOINCREMENT, key TEXT NOT NULL, "
                 "received_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP, body BLOB NOT NULL)"}
INDEX = f"CREATE UNIQUE INDEX IF NOT EXISTS uq_{TABLE}_key ON {TABLE} (key)"
INSERT = text(f"INSERT INTO {TABLE} (key, body) VALUES (:key, :body) ON CONFLICT (key) DO NOTHING")
STORED = b'{"received":true}'
FULFILLED = b'{"state":"FULFILLED"}'
JSON = {"Content-Type": "application/json"}


def _url(raw: str) -> str:
    for prefix in ("postgres://", "postgresql://"):
        if raw.startswith(prefix):
            return "postgresql+psycopg://" + raw[len(prefix):]
    return raw


def create_table(database_url: str) -> None:
    """The floor's table, empty (the benchmark's call, before gunicorn starts)."""
    engine = create_engine(_url(database_url))
    with engine.begin() as conn:
        conn.execute(text(DDL[conn.dialect.name]))
        conn.execute(text(INDEX))
        conn.execute(text(f"TRUNCATE {TABLE}" if conn.dialect.name == "postgresql" else f"DELETE FROM {TABLE}"))
    engine.dispose()


def rows(database_url: str) -> int:
    engine = create_engine(_url(database_url))
    with engine.connect() as conn:
        count = conn.execute(text(f"SELECT count(*) FROM {TABLE}")).scalar_one()
    engine.dispose()
    return count


_engine = create_engine(_url(os.environ.get("KB_DATABASE_URL", "sqlite://")), pool_size=5)
_kraty = os.environ.get("KB_BENCH_FLOOR_KRATY", "http://127.0.0.1:8100").rstrip("/")
_local = threading.local()
app = Flask(__name__)


def _persist(key: str, body: bytes) -> None:
    with _engine.connect() as conn:
        conn = conn.execution_options(isolation_level="AUTOCOMMIT")
        conn.execute(INSERT, {"key": key, "body": body})


def _session() -> requests.Session:
    session = getattr(_local, "session", None)
    if session is None:
        session = _local.session = requests.Session()
        session.trust_env = False
    return session


@app.put("/platform/v2/admin/namespaces/<namespace>/users/<user_id>/fulfillments/<transaction_id>")
def fulfil(namespace, user_id, transaction_id):
    body = request.get_data(cache=False)
    key = f"{namespace}:{transaction_id}"
    _persist(key, body)
    response = _session().post(f"{_kraty}/server/v1/players/{user_id}/wallet/gems/credit",
                               json={"amount": 1, "reason": "bench floor", "sourceRefId": key,
                                     "idempotencyKey": uuid.uuid4().hex},
                               headers={"Authorization": "Bearer kraty_sk_demo"}, timeout=(2, 5))
    response.raise_for_status()
    return FULFILLED, 200, JSON


def _store_webhook(**_):
    body = request.get_data(cache=False)
    _persist(hashlib.sha256(body).hexdigest(), body)
    return STORED, 200, JSON


for _rule in ("/webhooks/stripe/<namespace>", "/webhooks/app-store", "/webhooks/google-play", "/webhooks/kraty"):
    app.add_url_rule(_rule, endpoint=_rule, view_func=_store_webhook, methods=["POST"])
