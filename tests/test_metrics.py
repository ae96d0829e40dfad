"""Prometheus metrics: /metrics behind its key, each family moving after the action it counts, the scrape-time
gauges (queues, ledger) with a controllable clock, a scrape that survives Redis and the database being down,
and multi-process mode (several processes writing, one collecting; gunicorn with two workers and the bind)."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from datetime import timedelta

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families
from rq.job import Job
from sqlalchemy import func, select

from config.settings import ROOT, SettingsError, load_settings
from middleware.ledger.models import Fulfilment, utcnow
from middleware.metrics import recorders
from middleware.metrics.collectors import LedgerCollector, QueueCollector
from middleware.metrics.multiproc import prepare_dir
from middleware.sinks.delivery import deliver_now
from workers.queues import FULFILMENT_QUEUE, enqueue_event

from tests.support.orders_flow import drain, poll, put_order
from tests.support.stripe_events import completed
from tests.support.stripe_events import post as post_stripe
from tests.support.accelbyte import make_app  # noqa: F401  (fixture)
from tests.support.processes import Processes, free_port
from tests.support.kraty_webhooks import event as kraty_event
from tests.support.kraty_webhooks import kraty_app  # noqa: F401  (fixture)
from tests.support.kraty_webhooks import send as send_kraty
from tests.test_sink_delivery import T0, only_sink, record
from tests.support.sink_receiver import server  # noqa: F401  (fixture)

KEY = "metrics-key-0123456789abcdef"
BEARER = {"Authorization": f"Bearer {KEY}"}
CREDIT = "/wallet/.*/credit"


def parse(text: str) -> dict:
    """{(sample name, frozenset of labels): value}"""
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def scrape(client) -> dict:
    response = client.get("/metrics", headers=BEARER)
    assert response.status_code == 200, response.data
    assert response.mimetype == "text/plain"
    return parse(response.get_data(as_text=True))


def value(samples: dict, name: str, **labels) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


@pytest.fixture
def metrics_app(make_app):  # noqa: F811
    return make_app(metrics_key=KEY)


@pytest.fixture
def mclient(metrics_app):
    return metrics_app.test_client()


@pytest.fixture
def msvc(metrics_app):
    return metrics_app.extensions["kraty_bridge"]


def error_code(response) -> str:
    body = response.get_json()
    assert set(body) == {"error"} and body["error"]["requestId"], body
    return body["error"]["code"]


# ---------------------------------------------------------------- who may read /metrics
def test_metrics_need_the_key(mclient):
    assert error_code(missing := mclient.get("/metrics")) == "unauthenticated" and missing.status_code == 401
    wrong = mclient.get("/metrics", headers={"Authorization": "Bearer " + "x" * len(KEY)})
    assert wrong.status_code == 401 and error_code(wrong) == "unauthenticated"
    other_scheme = mclient.get("/metrics", headers={"Authorization": f"Basic {KEY}"})
    assert other_scheme.status_code == 401 and error_code(other_scheme) == "unauthenticated"
    prefix = mclient.get("/metrics", headers={"Authorization": f"Bearer {KEY[:-1]}"})
    assert prefix.status_code == 401
    samples = scrape(mclient)
    assert value(samples, "kb_scrape_errors", part="queues") == 0 and value(samples, "kb_scrape_errors",
                                                                              part="ledger") == 0


def test_metrics_answer_404_when_no_key_is_configured(client, make_app):  # noqa: F811
    response = client.get("/metrics", headers=BEARER)
    assert response.status_code == 404 and error_code(response) == "not_found"
    bind_only = make_app(metrics_bind="127.0.0.1:9108").test_client()  # served on the bind only, never here
    response = bind_only.get("/metrics", headers=BEARER)
    assert response.status_code == 404 and error_code(response) == "not_found"


@pytest.mark.parametrize("name, raw, problem", [
    ("KB_METRICS_KEY", "short", "at least 16 characters"),
    ("KB_METRICS_BIND", "9108", "expected host:port"),
    ("KB_METRICS_BIND", "127.0.0.1:99999", "expected host:port"),
    ("KB_METRICS_BIND", "127.0.0.1:http", "expected host:port"),
])
def test_bad_metrics_settings_name_the_setting(name, raw, problem):
    with pytest.raises(SettingsError) as info:
        load_settings({name: raw})
    assert str(info.value).startswith(f"{name}: ") and problem in str(info.value)


# ---------------------------------------------------------------- each family moves
def test_a_stripe_event_is_counted_at_ingest_then_handled_then_fulfilled(mclient, msvc, stripe_fake):
    session = stripe_fake.session(client_reference_id="player-1", line_items=[{"price": "price_gems_100",
                                                                               "quantity": 1}])
    paid = completed(session)
    before = scrape(mclient)
    assert post_stripe(mclient, paid).status_code == 200
    assert post_stripe(mclient, paid).status_code == 200                       # Stripe redelivers it
    assert post_stripe(mclient, paid, secret="whsec_someone_else").status_code == 401
    assert post_stripe(mclient, paid, path="/webhooks/stripe/nope").status_code == 404
    drain(msvc.redis)
    after = scrape(mclient)

    def moved(name, **labels):
        return value(after, name, **labels) - value(before, name, **labels)

    assert moved("kb_ingested_events_total", source="stripe", outcome="recorded") == 1
    assert moved("kb_ingested_events_total", source="stripe", outcome="duplicate") == 1
    assert moved("kb_ingested_events_total", source="stripe", outcome="rejected") == 2
    assert moved("kb_handled_events_total", source="stripe", outcome="processed") == 1
    assert moved("kb_time_to_fulfilled_seconds_count", source="stripe") == 1
    assert moved("kb_time_to_fulfilled_seconds_bucket", source="stripe", le="+Inf") == 1
    assert moved("kb_kraty_calls_total", operation="credit", status="200") == 1
    assert moved("kb_kraty_call_seconds_count", operation="credit") == 1


def test_a_kraty_webhook_is_counted(kraty_app, services):  # noqa: F811
    client = kraty_app.test_client()
    kraty_app.extensions["kraty_bridge"].settings = services.settings.replace(metrics_key=KEY)
    before = scrape(client)
    body = kraty_event()
    assert send_kraty(client, body, msg_id="msg_m1").status_code == 200
    assert send_kraty(client, body, msg_id="msg_m1").status_code == 200
    assert send_kraty(client, body, secret="whsec_" + "Zm9v" * 8).status_code == 401
    after = scrape(client)
    for outcome, n in (("recorded", 1), ("duplicate", 1), ("rejected", 1)):
        assert value(after, "kb_ingested_events_total", source="kraty", outcome=outcome) - value(
            before, "kb_ingested_events_total", source="kraty", outcome=outcome) == n, outcome


def test_an_order_through_the_accelbyte_api_counts_its_kraty_calls_and_time_to_fulfilled(mclient, emulator):
    before = scrape(mclient)
    response = put_order(mclient, [{"itemSku": "starter_pack", "quantity": 1}], txn="m-1")
    assert response.status_code == 200 and response.get_json()["state"] == "FULFILLED"
    assert put_order(mclient, [{"itemSku": "starter_pack", "quantity": 1}], txn="m-1").status_code == 200
    after = scrape(mclient)

    def moved(name, **labels):
        return value(after, name, **labels) - value(before, name, **labels)

    assert moved("kb_ingested_events_total", source="accelbyte", outcome="recorded") == 1
    assert moved("kb_ingested_events_total", source="accelbyte", outcome="duplicate") == 1
    assert moved("kb_time_to_fulfilled_seconds_count", source="accelbyte") == 1   # once: the repeat grants nothing
    assert moved("kb_kraty_calls_total", operation="credit", status="200") == 1    # 200 gems
    assert moved("kb_kraty_calls_total", operation="grant_item", status="200") == 2  # a sword, a shield
    assert moved("kb_kraty_call_seconds_count", operation="grant_item") == 2


def test_failing_kraty_calls_are_counted_by_status_and_a_failed_order_shows(mclient, msvc, emulator):
    emulator.faults({"path": CREDIT, "status": 503, "count": 1})
    before = scrape(mclient)
    retrying = put_order(mclient, [{"itemSku": "gems_100", "quantity": 1}], txn="m-503")
    assert retrying.status_code == 503 and "retrying" in retrying.get_json()["errorMessage"]
    emulator.faults({"path": CREDIT, "status": 400, "count": 1})
    failed = put_order(mclient, [{"itemSku": "gems_100", "quantity": 1}], txn="m-400")
    assert failed.get_json()["state"] == "FULFILL_FAILED" and "retrying" not in failed.get_json()["stateReason"]
    after = scrape(mclient)
    assert value(after, "kb_kraty_calls_total", operation="credit", status="503") - value(
        before, "kb_kraty_calls_total", operation="credit", status="503") == 1
    assert value(after, "kb_kraty_calls_total", operation="credit", status="400") - value(
        before, "kb_kraty_calls_total", operation="credit", status="400") == 1
    assert value(after, "kb_orders_failed", state="FULFILL_FAILED") == 1
    assert value(after, "kb_orders_failed", state="REVOKE_FAILED") == 0
    assert 0 <= value(after, "kb_orders_failed_oldest_age_seconds", state="FULFILL_FAILED") < 600  # just failed
    with msvc.session() as session:
        received = session.scalar(select(func.min(Fulfilment.created_at)).where(Fulfilment.state == "FULFILL_FAILED"))
    families = {f.name: f for f in LedgerCollector(lambda: msvc.engine, [], clock=lambda: received.timestamp() + 42.5)
                .collect()}
    [age] = [s for s in families["kb_orders_failed_oldest_age_seconds"].samples if s.labels["state"] == "FULFILL_FAILED"]
    assert age.value == pytest.approx(42.5, abs=0.01)
    # the 503 left its order FULFILLING with a retry scheduled: active, not failed
    assert value(after, "kb_orders_active", state="FULFILLING") == 1


def test_kraty_timeouts_and_connection_errors_have_their_own_status():
    from middleware.kraty.client import KratyClient, KratyError
    client = KratyClient(f"http://127.0.0.1:{free_port()}", "key", (0.5, 0.5))  # nothing listens there
    before = recorders.KRATY_CALLS.labels("player_profile", "error")._value.get()
    with pytest.raises(KratyError):
        client.player_profile("p-1")
    assert recorders.KRATY_CALLS.labels("player_profile", "error")._value.get() == before + 1
    with pytest.raises(KratyError), recorders.kraty_call("POST", "/players/p/wallet/gems/debit"):
        raise KratyError(True, "timeout", "slow")
    assert recorders.KRATY_CALLS.labels("debit", "timeout")._value.get() >= 1


@pytest.mark.parametrize("method, path, operation", [
    ("POST", "/players/p%2F1/wallet/gems/credit", "credit"), ("POST", "/players/p/wallet/gems/debit", "debit"),
    ("POST", "/players/p/inventory/sword/grant", "grant_item"),
    ("POST", "/players/p/inventory/sword/revoke", "revoke_item"), ("POST", "/players/p/grants", "make_good"),
    ("GET", "/players/p", "player_profile"), ("GET", "/players/p/export", "export_player"),
    ("DELETE", "/players/p", "delete_player"), ("POST", "/players/p/merge", "merge_players"),
    ("POST", "/migrate/wallets", "migrate"), ("GET", "/somewhere/else", "other"),
])
def test_kraty_operations_have_stable_names(method, path, operation):
    assert recorders.kraty_operation(method, path) == operation


# ---------------------------------------------------------------- scrape-time gauges
def test_a_queued_job_shows_as_depth_and_age(mclient, msvc):
    redis = msvc.redis
    empty = scrape(mclient)
    assert value(empty, "kb_queue_depth", queue=FULFILMENT_QUEUE) == 0
    assert value(empty, "kb_queue_oldest_job_age_seconds", queue=FULFILMENT_QUEUE) == 0
    job_id = enqueue_event(redis, "stripe", 424242)
    samples = scrape(mclient)
    assert value(samples, "kb_queue_depth", queue=FULFILMENT_QUEUE) == 1
    assert value(samples, "kb_queue_depth", queue="kb-sinks") == 0
    assert 0 <= value(samples, "kb_queue_oldest_job_age_seconds", queue=FULFILMENT_QUEUE) < 600  # just queued
    enqueued = Job.fetch(job_id, connection=redis).enqueued_at.timestamp()
    collector = QueueCollector(lambda: redis, clock=lambda: enqueued + 42.5)
    families = {f.name: f for f in collector.collect()}
    [age] = [s for s in families["kb_queue_oldest_job_age_seconds"].samples if s.labels["queue"] == FULFILMENT_QUEUE]
    assert age.value == pytest.approx(42.5, abs=0.01)


def test_dead_letters_lag_and_delivery_time_per_sink(mclient, msvc, server):  # noqa: F811
    only_sink(msvc, server, schedule=(0.0,))  # one attempt, then dead-lettered
    server.answer(500)
    [dead_id] = record(msvc, enqueue=False)
    assert deliver_now(msvc, dead_id, now=T0) == "dead"
    [waiting_id] = record(msvc, enqueue=False)
    before = scrape(mclient)
    assert value(before, "kb_sink_dead_letters", sink="crm") == 1
    assert value(before, "kb_sink_deliveries", sink="crm", state="dead") == 1
    assert value(before, "kb_sink_deliveries", sink="crm", state="pending") == 1
    assert 0 <= value(before, "kb_sink_delivery_lag_seconds", sink="crm") < 600  # recorded just now
    lag = {f.name: f for f in LedgerCollector(lambda: msvc.engine, ["crm"], clock=lambda: (
        utcnow() + timedelta(seconds=600)).timestamp()).collect()}["kb_sink_delivery_lag_seconds"]
    assert 600 <= lag.samples[0].value < 3600
    assert deliver_now(msvc, waiting_id, now=T0) == "delivered"  # the sink answers 200 again
    after = scrape(mclient)
    assert value(after, "kb_sink_delivery_lag_seconds", sink="crm") == 0
    assert value(after, "kb_sink_deliveries", sink="crm", state="pending") == 0
    assert value(after, "kb_sink_delivery_seconds_count", sink="crm") - value(
        before, "kb_sink_delivery_seconds_count", sink="crm") == 1
    # T0 is tomorrow 10:00: created now, delivered at T0, so between 0 and 2 days
    assert value(after, "kb_sink_delivery_seconds_bucket", sink="crm", le="172800.0") - value(
        before, "kb_sink_delivery_seconds_bucket", sink="crm", le="172800.0") == 1


def test_redis_and_the_database_down_do_not_break_the_scrape(make_app):  # noqa: F811
    dead = free_port()
    app = make_app(metrics_key=KEY, database_url=f"postgresql+psycopg://postgres@127.0.0.1:{dead}/none",
                   redis_url=f"redis://127.0.0.1:{dead}/0")
    samples = scrape(app.test_client())
    assert value(samples, "kb_scrape_errors", part="queues") == 1
    assert value(samples, "kb_scrape_errors", part="ledger") == 1
    assert not any(name == "kb_queue_depth" for name, _labels in samples)
    assert any(name == "kb_kraty_calls_total" or name.startswith("python_") for name, _labels in samples)


# ---------------------------------------------------------------- multi-process mode
WRITER = textwrap.dedent("""
    from datetime import datetime, timedelta, timezone
    from middleware.metrics import recorders
    with recorders.kraty_call("POST", "/players/p/wallet/gems/credit"):
        pass
    recorders.ingested("stripe", 1, "pending")
    now = datetime.now(timezone.utc)
    recorders.fulfilled("stripe", now - timedelta(seconds=3), now)
    print("written")
""")
COLLECTOR = textwrap.dedent("""
    from prometheus_client import generate_latest
    from middleware.metrics.listener import Scrape
    def down():
        raise OSError("not in this test")
    print(generate_latest(Scrape(down, down)).decode())
""")


@pytest.mark.processes
def test_several_processes_write_and_one_collects(tmp_path):
    directory = tmp_path / "metrics"
    directory.mkdir()
    env = dict(os.environ, PROMETHEUS_MULTIPROC_DIR=str(directory), PYTHONPATH=str(ROOT))
    for _ in range(2):
        done = subprocess.run([sys.executable, "-c", WRITER], cwd=ROOT, env=env, capture_output=True, text=True,
                              timeout=60, check=False)
        assert done.returncode == 0 and "written" in done.stdout, done.stderr
    pids = {name.split("_")[-1] for name in os.listdir(directory)}
    assert len(pids) == 2  # one set of files per process
    collected = subprocess.run([sys.executable, "-c", COLLECTOR], cwd=ROOT, env=env, capture_output=True,
                               text=True, timeout=60, check=False)
    assert collected.returncode == 0, collected.stderr
    samples = parse(collected.stdout)
    assert value(samples, "kb_kraty_calls_total", operation="credit", status="200") == 2
    assert value(samples, "kb_kraty_call_seconds_count", operation="credit") == 2
    assert value(samples, "kb_ingested_events_total", source="stripe", outcome="recorded") == 2
    assert value(samples, "kb_time_to_fulfilled_seconds_bucket", source="stripe", le="5.0") == 2
    assert value(samples, "kb_time_to_fulfilled_seconds_bucket", source="stripe", le="2.5") == 0
    assert value(samples, "kb_scrape_errors", part="ledger") == 1  # the parts it could not read, said so
    # starting again: files of processes that are gone are removed, a live process's are kept
    live = directory / f"counter_{os.getppid()}.db"
    live.write_bytes(b"")
    files = len(os.listdir(directory))
    assert prepare_dir(str(directory)) == files - 1
    assert sorted(os.listdir(directory)) == [live.name]
    assert prepare_dir(str(directory), everything=True) == 1 and os.listdir(directory) == []


@pytest.mark.processes
def test_gunicorn_workers_add_up_and_the_master_serves_the_bind(tmp_path, database_url, redis_url, clean):
    web_port, bind_port = free_port(), free_port()
    directory = tmp_path / "metrics"
    env = dict(os.environ, KB_DATABASE_URL=database_url, KB_REDIS_URL=redis_url, KB_METRICS_KEY=KEY,
               KB_METRICS_BIND=f"127.0.0.1:{bind_port}", PROMETHEUS_MULTIPROC_DIR=str(directory),
               KB_LOG_LEVEL="WARNING", PYTHONPATH=str(ROOT))
    procs = Processes()
    try:
        procs.start([sys.executable, "-m", "gunicorn", "-c", "config/gunicorn.conf.py", "app:create_app()",
                     "-b", f"127.0.0.1:{web_port}", "-w", "2", "--no-control-socket"], env, tmp_path / "gunicorn.log")
        web, bind = f"http://127.0.0.1:{web_port}", f"http://127.0.0.1:{bind_port}/metrics"

        def up():
            try:
                return requests.get(f"{web}/healthz", timeout=1).ok and requests.get(bind, timeout=1).ok
            except requests.RequestException:
                return False

        poll(up, timeout=60, what="gunicorn and its metrics listener")
        sent = 20
        for _ in range(sent):  # refused: nothing recorded, counted by whichever worker answers
            response = requests.post(f"{web}/webhooks/stripe/demo", data=b"{}", timeout=5,
                                     headers={"Content-Type": "application/json", "Stripe-Signature": "garbage"})
            assert response.status_code == 400
        for _ in range(4):  # every scrape, whichever worker serves it, sees all of them
            samples = parse(requests.get(f"{web}/metrics", headers=BEARER, timeout=5).text)
            assert value(samples, "kb_ingested_events_total", source="stripe", outcome="rejected") == sent
        assert requests.get(f"{web}/metrics", timeout=5).status_code == 401
        from_bind = parse(requests.get(bind, timeout=5).text)
        assert value(from_bind, "kb_ingested_events_total", source="stripe", outcome="rejected") == sent
        assert value(from_bind, "kb_http_request_seconds_count", route="/webhooks/stripe/<namespace>", method="POST",
                     status="400") == sent  # request metrics add up over the workers too
        assert value(from_bind, "kb_scrape_errors", part="ledger") == 0
        assert value(from_bind, "kb_queue_depth", queue=FULFILMENT_QUEUE) == 0
        writers = {name.rsplit("_", 1)[-1] for name in os.listdir(directory)}
        assert 1 <= len(writers) <= 2  # the workers' files, nothing from the master
    finally:
        procs.stop()
        log = tmp_path / "gunicorn.log"
        if log.exists():
            print(log.read_text()[-3000:])
