"""End to end with real processes: gunicorn serving the app, an RQ worker, the Kraty emulator (which also
serves the Stripe fake under /stripe)."""
from __future__ import annotations

import os
import sys

import pytest
import requests
from sqlalchemy import create_engine, select

from config.settings import ROOT
from middleware.ledger.models import Fulfilment

from tests.support.orders_flow import AUTH, fulfil_path, poll
from tests.support.processes import Processes, free_port, print_logs, up
from tests.support.stripe_fake import StripeFake
from tests.support.stripe_events import PATH as STRIPE_PATH
from tests.support.stripe_events import body_of, completed, refund_to, sign

pytestmark = pytest.mark.processes


@pytest.fixture
def stack(tmp_path, database_url, redis_url, clean):
    kraty_port, web_port = free_port(), free_port()
    kraty = f"http://127.0.0.1:{kraty_port}"
    catalog = tmp_path / "catalog.toml"
    catalog.write_text((ROOT / "config/examples/catalog.toml").read_text().replace("http://127.0.0.1:8100", kraty))
    env = dict(os.environ, KB_DATABASE_URL=database_url, KB_REDIS_URL=redis_url, KB_CATALOG=str(catalog),
               KB_STRIPE_API_BASE=f"{kraty}/stripe",
               KB_RETRY_BASE_SECONDS="0.2", KB_RETRY_MAX_DELAY_SECONDS="0.5", KB_LOG_LEVEL="INFO",
               KB_PUT_SETTLE_SECONDS="0.001",  # answer "not settled yet" after the first attempt
               PYTHONPATH=str(ROOT))
    procs = Processes()
    try:
        procs.start([sys.executable, "-m", "emulator", "--port", str(kraty_port), "--config",
                     str(ROOT / "emulator/example.toml")], env, tmp_path / "emulator.log")
        procs.start([sys.executable, "-m", "gunicorn", "app:create_app()", "-b", f"127.0.0.1:{web_port}", "-w", "2",
                     "--no-control-socket"],
                    env, tmp_path / "gunicorn.log")
        procs.start([sys.executable, "-m", "workers"], env, tmp_path / "worker.log")
        web = f"http://127.0.0.1:{web_port}"
        poll(lambda: up(f"{web}/readyz") and up(f"{kraty}/_emulator/faults"), timeout=60, what="the stack")
        yield web, kraty
    finally:
        procs.stop()
        print_logs(tmp_path, ("emulator", "gunicorn", "worker"))


def test_order_through_gunicorn_worker_and_emulator(stack):
    web, kraty = stack
    # Fulfilled inline by the web process
    r = requests.put(web + fulfil_path("p-e2e", "e2e-1"), json={"items": [{"itemSku": "starter_pack", "quantity": 1}]},
                     headers=AUTH, timeout=10)
    assert r.status_code == 200 and r.json()["state"] == "FULFILLED", r.text
    assert r.headers["X-Request-Id"]

    # Kraty fails the first call: the web answers "not settled yet" (503, Retry-After), never FULFILL_FAILED;
    # the separate worker process finishes it.
    requests.put(f"{kraty}/_emulator/faults", json={"rules": [{"path": "/credit", "status": 503, "count": 1}]},
                 timeout=5).raise_for_status()
    r = requests.put(web + fulfil_path("p-e2e", "e2e-2"), json={"items": [{"itemSku": "gems_500", "quantity": 2}]},
                     headers=AUTH, timeout=10)
    assert r.status_code == 503 and int(r.headers["Retry-After"]) >= 1, r.text
    assert r.json()["errorCode"] == 20000 and "retrying" in r.json()["errorMessage"]

    def fulfilled():
        rows = requests.get(f"{web}/platform/v2/admin/namespaces/demo/fulfillments",
                            params={"transactionId": "e2e-2"}, headers=AUTH, timeout=5).json()["data"]
        return rows and rows[0]["state"] == "FULFILLED"

    poll(fulfilled, timeout=30, interval=0.2, what="the worker to fulfil e2e-2")
    player = requests.get(f"{kraty}/_emulator/players/demo/p-e2e", timeout=5).json()
    player = player.get("data", player)
    assert player["wallet"]["gems"] == 200 + 1000
    ledger = requests.get(f"{kraty}/_emulator/ledger", params={"player": "p-e2e"}, timeout=5).json()["entries"]
    assert len([e for e in ledger if e["sourceRefId"] == "e2e-2"]) == 1
    # the same PUT again answers the settled state
    r = requests.put(web + fulfil_path("p-e2e", "e2e-2"), json={"items": [{"itemSku": "gems_500", "quantity": 2}]},
                     headers=AUTH, timeout=10)
    assert r.status_code == 200 and r.json()["state"] == "FULFILLED", r.text


def _player(kraty: str, player: str) -> dict:
    body = requests.get(f"{kraty}/_emulator/players/demo/{player}", timeout=5).json()
    return body.get("data", body)


def _post_signed(web: str, ev: dict) -> requests.Response:
    body = body_of(ev)
    return requests.post(web + STRIPE_PATH, data=body, timeout=10,
                         headers={"Content-Type": "application/json", "Stripe-Signature": sign(body)})


def test_stripe_purchase_and_refund_through_gunicorn_worker_and_emulator(stack, database_url):
    """The worker fetches the session's line items from the emulator's Stripe fake (KB_STRIPE_API_BASE)."""
    web, kraty = stack
    fake = StripeFake(f"{kraty}/stripe")
    session = fake.session(client_reference_id="p-stripe", line_items=[{"price": "price_gems_100", "quantity": 2}])
    engine = create_engine(database_url)

    def state():
        with engine.connect() as connection:
            return connection.scalar(select(Fulfilment.state).where(
                Fulfilment.source == "stripe", Fulfilment.transaction_id == session["id"]))

    try:
        r = _post_signed(web, completed({k: v for k, v in session.items() if k != "line_items"}))
        assert r.status_code == 200 and r.json()["duplicate"] is False, r.text
        poll(lambda: _player(kraty, "p-stripe").get("wallet", {}).get("gems") == 200 and state() == "FULFILLED",
             timeout=30, interval=0.2, what="the Stripe purchase to be granted")
        assert any(call["path"] == f"/v1/checkout/sessions/{session['id']}" for call in fake.requests())

        total = session["amount_total"]
        r = _post_signed(web, refund_to(fake, session["payment_intent"], total)[1])
        assert r.status_code == 200, r.text
        poll(lambda: _player(kraty, "p-stripe").get("wallet", {}).get("gems") == 0 and state() == "REVOKED",
             timeout=30, interval=0.2, what="the Stripe refund to be taken back")
        ledger = requests.get(f"{kraty}/_emulator/ledger", params={"player": "p-stripe"}, timeout=5).json()["entries"]
        assert sorted(e["kind"] for e in ledger) == ["credit", "debit"]
    finally:
        engine.dispose()
        fake.http.close()
