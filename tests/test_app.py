"""The app's basics: start-up checks, health, request ids, JSON logs, errors in our shape."""
from __future__ import annotations

import io
import json
import logging
from pathlib import Path

import pytest

from app import create_app
from config.catalog import CatalogError
from config.settings import SettingsError, load_settings
from middleware import logs


def test_healthz_and_readyz(client):
    assert client.get("/healthz").get_json() == {"status": "ok"}
    r = client.get("/readyz")
    assert r.status_code == 200
    assert r.get_json()["checks"] == {"database": "ok", "redis": "ok"}


def test_readyz_says_which_dependency_is_down(settings_overrides, clean):
    app = create_app({**settings_overrides, "redis_url": "redis://127.0.0.1:1/0"})
    r = app.test_client().get("/readyz")
    assert r.status_code == 503
    assert r.get_json()["checks"]["database"] == "ok"
    assert r.get_json()["checks"]["redis"].startswith("unavailable")
    assert r.get_json()["missing"] == ["redis"] and r.headers["Retry-After"] == "5"
    app.extensions["kraty_bridge"].close()


def test_database_down_answers_503_not_500(settings_overrides, clean, tmp_path):
    app = create_app({**settings_overrides, "database_url": "postgresql+psycopg://nobody@127.0.0.1:1/none"})
    client = app.test_client()
    r = client.put("/platform/v2/admin/namespaces/demo/users/p/fulfillments/t",
                   json={"items": [{"itemSku": "gems_100", "quantity": 1}]},
                   headers={"Authorization": "Bearer demo-storefront-token"})
    assert r.status_code == 503
    assert r.headers["Retry-After"]
    assert set(r.get_json()) == {"errorCode", "errorMessage"}
    assert client.get("/readyz").status_code == 503
    app.extensions["kraty_bridge"].close()


def test_redis_down_where_a_request_needs_it_answers_503_not_500(settings_overrides, clean):
    from redis.exceptions import ConnectionError as RedisConnectionError
    app = create_app(settings_overrides)

    @app.get("/_test/needs-the-queue")
    def needs_the_queue():
        raise RedisConnectionError("connection refused")

    r = app.test_client().get("/_test/needs-the-queue")
    assert r.status_code == 503 and r.headers["Retry-After"] == "5"
    assert r.get_json()["error"]["code"] == "queue_unavailable"
    app.extensions["kraty_bridge"].close()


def test_request_id_is_echoed_or_made(client):
    r = client.get("/healthz", headers={"X-Request-Id": "req-12345678"})
    assert r.headers["X-Request-Id"] == "req-12345678"
    made = client.get("/healthz", headers={"X-Request-Id": "bad id with spaces"}).headers["X-Request-Id"]
    assert made != "bad id with spaces" and len(made) == 32
    assert client.get("/nowhere").headers["X-Request-Id"]


def test_unknown_paths_answer_json_errors(client):
    r = client.get("/nowhere")
    assert r.status_code == 404 and r.get_json()["error"]["code"] == "not_found"
    r = client.get("/platform/v2/admin/namespaces/demo/users/p/fulfillments/t")
    assert r.status_code == 405 and "errorCode" in r.get_json()


def test_log_lines_are_json_with_the_request_id(settings_overrides, clean):
    app = create_app({**settings_overrides, "log_json": True, "log_level": "INFO"})
    handler = next(h for h in logging.getLogger().handlers if getattr(h, "_kraty_bridge", False))
    stream = io.StringIO()
    previous = handler.setStream(stream)

    @app.get("/_log")
    def _log():
        logging.getLogger("kraty_bridge.test").info("hello %s", "there")
        return "ok"

    app.test_client().get("/_log", headers={"X-Request-Id": "req-abcdef01"})
    handler.setStream(previous)
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    entry = next(line for line in lines if line["message"] == "hello there")
    assert entry["request_id"] == "req-abcdef01" and entry["level"] == "INFO" and entry["time"].endswith("Z")
    app.extensions["kraty_bridge"].close()
    create_app({**settings_overrides, "log_json": False, "log_level": "WARNING"}).extensions["kraty_bridge"].close()


def test_a_bad_catalog_stops_the_start_naming_file_key_and_problem(settings_overrides, clean, tmp_path):
    bad = tmp_path / "catalog.toml"
    bad.write_text(Path(settings_overrides["catalog_path"]).read_text().replace(
        'grants = [{ currency = "gems", amount = 100 }]', 'grants = [{ currency = "gems", amount = -5 }]', 1))
    with pytest.raises(CatalogError) as info:
        create_app({**settings_overrides, "catalog_path": str(bad)})
    message = str(info.value)
    assert str(bad) in message and "games.demo.products.gems_100.grants[0].amount" in message


@pytest.mark.parametrize("name, value, problem", [
    ("KB_MAX_BODY_BYTES", "lots", "expected a number"),
    ("KB_RETRY_MAX_ATTEMPTS", "0", "greater than 0"),
    ("KB_LOG_JSON", "maybe", "true or false"),
    ("KB_LOG_LEVEL", "LOUD", "KB_LOG_LEVEL"),
    ("KB_REDIS_URL", "  ", "must not be empty"),
])
def test_bad_settings_stop_the_start_naming_the_setting(name, value, problem):
    with pytest.raises(SettingsError) as info:
        load_settings({name: value})
    assert name in str(info.value) and problem in str(info.value)


def test_settings_defaults():
    settings = load_settings({})
    assert settings.database_url.startswith("sqlite:///") and settings.database_url.endswith("kraty-bridge.db")
    assert settings.max_body_bytes == 1_048_576 and settings.log_json is True


def test_job_log_lines_carry_the_job_id(app, client, emulator, redis):
    from tests.support.orders_flow import drain, put_order
    handler = next(h for h in logging.getLogger().handlers if getattr(h, "_kraty_bridge", False))
    handler.setFormatter(logs.JsonFormatter())
    stream = io.StringIO()
    previous = handler.setStream(stream)
    logging.getLogger().setLevel("INFO")
    try:
        emulator.faults({"path": "/credit", "status": 503, "count": 1})
        put_order(client, [{"itemSku": "gems_100", "quantity": 1}])
        drain(redis)
    finally:
        handler.setStream(previous)
        logging.getLogger().setLevel("WARNING")
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    job_lines = [line for line in lines if (line["request_id"] or "").startswith("fulfil-")]
    assert job_lines, lines


@pytest.mark.processes
def test_worker_entry_point_refuses_a_bad_catalog_with_a_message(tmp_path):
    import os
    import subprocess
    import sys

    from config.settings import ROOT
    bad = tmp_path / "catalog.toml"
    bad.write_text('[games.demo]\nkraty_base_url = "not a url"\n')
    env = dict(os.environ, KB_CATALOG=str(bad), PYTHONPATH=str(ROOT))
    done = subprocess.run([sys.executable, "-m", "workers", "--burst"], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode != 0
    assert str(bad) in done.stderr and "games.demo.kraty_base_url" in done.stderr
    assert "Traceback" not in done.stderr
