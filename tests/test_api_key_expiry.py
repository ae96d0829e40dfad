"""API keys for machines: an optional expiry (``flask keys create --expires-in``; an expired key is a 401 saying so,
on /v1 and at the console's sign-in) and a "last used" time written at most once a minute, shown by
``flask keys list``."""
from __future__ import annotations

import json
from datetime import datetime, timedelta

import pytest
from sqlalchemy import select, update

from middleware.ledger import api_keys
from middleware.ledger.models import ApiKey, utcnow

from workers import runtime

from tests.test_console import SECRET, csrf_of, text


def create(runner, *args) -> str:
    made = runner.invoke(args=["keys", "create", *args])
    assert made.exit_code == 0, made.output
    return made.output.split()[1]


def row(services, name) -> ApiKey:
    with services.session() as session:
        found = session.scalars(select(ApiKey).where(ApiKey.name == name)).one()
        session.expunge(found)
        return found


def expire(services, name) -> None:
    with services.session() as session:
        session.execute(update(ApiKey).where(ApiKey.name == name).values(expires_at=utcnow() - timedelta(seconds=1)))
        session.commit()


def test_durations():
    assert api_keys.parse_duration("90d") == timedelta(days=90)
    assert api_keys.parse_duration("12h") == timedelta(hours=12)
    assert api_keys.parse_duration("30m") == timedelta(minutes=30)
    assert api_keys.parse_duration("2w") == timedelta(weeks=2)
    for bad in ("", "90", "d", "0d", "-1d", "1y", "1.5d", "999999d", "90 days"):
        with pytest.raises(ValueError):
            api_keys.parse_duration(bad)


def test_create_with_an_expiry_and_list_it(runner, services):
    create(runner, "ci-bot", "viewer", "--expires-in", "90d")
    expires = row(services, "ci-bot").expires_at
    assert timedelta(days=90) - timedelta(minutes=1) < expires - utcnow() <= timedelta(days=90)
    create(runner, "forever", "viewer")
    assert row(services, "forever").expires_at is None
    listed = json.loads(runner.invoke(args=["keys", "list", "--json"]).stdout)
    assert [(r["name"], r["expiresAt"] is not None, r["lastUsedAt"]) for r in listed] == [
        ("ci-bot", True, None), ("forever", False, None)]
    assert "EXPIRES" in runner.invoke(args=["keys", "list"]).output
    bad = runner.invoke(args=["keys", "create", "bad", "viewer", "--expires-in", "soon"])
    assert bad.exit_code != 0 and "30m, 12h, 90d or 2w" in bad.output
    assert "bad" not in runner.invoke(args=["keys", "list"]).output


def test_an_expired_key_is_a_401_saying_so(client, runner, services):
    token = create(runner, "ci-bot", "viewer", "--expires-in", "1h")
    headers = {"Authorization": f"Bearer {token}"}
    assert client.get("/v1/fulfilments", headers=headers).status_code == 200
    expire(services, "ci-bot")
    response = client.get("/v1/fulfilments", headers=headers)
    error = response.get_json()["error"]
    assert response.status_code == 401 and error["code"] == "unauthenticated"
    assert error["message"].startswith("the API key ci-bot expired at ")
    unknown = client.get("/v1/fulfilments", headers={"Authorization": "Bearer kb_nope"}).get_json()["error"]
    assert unknown["message"] == "unknown or revoked API key"            # as before


def test_last_used_is_written_at_most_once_a_minute(client, runner, services):
    token = create(runner, "ci-bot", "viewer")
    headers = {"Authorization": f"Bearer {token}"}
    assert row(services, "ci-bot").last_used_at is None
    client.get("/v1/fulfilments", headers=headers)
    first = row(services, "ci-bot").last_used_at
    assert first is not None and utcnow() - first < timedelta(minutes=1)
    client.get("/v1/fulfilments", headers=headers)
    assert row(services, "ci-bot").last_used_at == first                 # within the minute: not written again
    with services.session() as session:
        session.execute(update(ApiKey).where(ApiKey.name == "ci-bot").values(last_used_at=first - timedelta(minutes=2)))
        session.commit()
    client.get("/v1/fulfilments", headers=headers)
    assert row(services, "ci-bot").last_used_at > first
    [listed] = json.loads(runner.invoke(args=["keys", "list", "--json"]).stdout)
    assert datetime.fromisoformat(listed["lastUsedAt"]) == row(services, "ci-bot").last_used_at


@pytest.fixture
def console_client(settings_overrides, clean, app_cache):
    app = app_cache.app({**settings_overrides, "secret_key": SECRET})
    runtime.use(app)
    yield app.test_client()
    runtime.use(None)
    app.extensions["kraty_bridge"].close()


def test_an_expired_key_cannot_sign_in_and_ends_its_console_session(console_client):
    app = console_client.application
    runner = app.test_cli_runner()
    services = app.extensions["kraty_bridge"]
    token = create(runner, "alice", "operator", "--expires-in", "1h")
    page = console_client.get("/console/sign-in")
    assert console_client.post("/console/sign-in", data={"key": token, "csrf_token": csrf_of(page)}).status_code == 303
    assert console_client.get("/console/").status_code == 200
    expire(services, "alice")
    assert console_client.get("/console/").status_code == 303
    assert "has expired" in text(console_client.get("/console/sign-in"))
    page = console_client.get("/console/sign-in")
    refused = console_client.post("/console/sign-in", data={"key": token, "csrf_token": csrf_of(page)})
    assert refused.status_code == 401 and "expired at" in text(refused)
