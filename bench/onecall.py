"""The e2e benchmark's floor of an attempt: a job that does the least an order's fulfilment must do — one
Kraty call (a credit with an idempotency key, to the emulator) and one committed UPDATE of the order's row —
with none of kraty-bridge's code: its own pooled engine (no pre-ping) and HTTP session, built once per
process from ``KB_DATABASE_URL`` and ``KB_BENCH_KRATY_URL`` / ``KB_BENCH_KRATY_KEY``."""
from __future__ import annotations

import os

import requests
from sqlalchemy import create_engine, text

_engine = None
_http: requests.Session | None = None
UPDATE = text("UPDATE fulfilments SET state = 'FULFILLED', updated_at = CURRENT_TIMESTAMP, version = version + 1 "
              "WHERE id = :id")


def one_call(fulfilment_id: str) -> str:
    global _engine, _http
    if _engine is None:
        url = os.environ["KB_DATABASE_URL"]
        _engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
        _http = requests.Session()
        _http.trust_env = False
    base, key = os.environ["KB_BENCH_KRATY_URL"], os.environ["KB_BENCH_KRATY_KEY"]
    response = _http.post(f"{base}/server/v1/players/floor-{fulfilment_id[:8]}/wallet/gems/credit",
                          json={"amount": 100, "reason": "floor", "sourceRefId": fulfilment_id,
                                "idempotencyKey": f"floor-{fulfilment_id}"},
                          headers={"Authorization": f"Bearer {key}"}, timeout=(5, 30))
    response.raise_for_status()
    with _engine.begin() as connection:
        connection.execute(UPDATE, {"id": fulfilment_id})
    return fulfilment_id
