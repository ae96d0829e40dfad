"""Secrets from files (``*_FILE``) and KB_SECRET_KEY as a list of keys: rotating it keeps console sessions and
the ops API's cursors good (the first key signs, every one verifies), and dropping the old key ends them."""
from __future__ import annotations

import pytest

from app import create_app
from config.settings import SettingsError, load_settings
from workers import runtime

from tests.support.ops_ledger import key
from tests.test_console import sign_in
from tests.support.orders_flow import put_order

OLD = "old-key-0123456789abcdef0123456789abcdef"
NEW = "new-key-fedcba9876543210fedcba9876543210"


def test_secret_settings_from_files(tmp_path):
    secret = tmp_path / "kb_secret_key"
    secret.write_text(f"{NEW}\n{OLD}\n")          # one key per line: the first signs
    url = tmp_path / "db_url"
    url.write_text("postgresql+psycopg://kb:s3cret@db/kb\n")
    settings = load_settings({"KB_SECRET_KEY_FILE": str(secret), "KB_DATABASE_URL_FILE": str(url)})
    assert settings.secret_keys == (NEW, OLD) and settings.database_url == "postgresql+psycopg://kb:s3cret@db/kb"
    assert load_settings({"KB_SECRET_KEY": f" {NEW} , {OLD} "}).secret_keys == (NEW, OLD)
    assert load_settings({"KB_METRICS_KEY_FILE": str(url)}).metrics_key == url.read_text().strip()


@pytest.mark.parametrize("environ, problem", [
    ({"KB_SECRET_KEY_FILE": "/nonexistent/kb"}, "KB_SECRET_KEY_FILE: cannot read /nonexistent/kb"),
    ({"KB_SECRET_KEY_FILE": "{empty}"}, "KB_SECRET_KEY_FILE: {empty} is empty"),
    ({"KB_SECRET_KEY_FILE": "{two}", "KB_SECRET_KEY": NEW}, "KB_SECRET_KEY_FILE: KB_SECRET_KEY is set too"),
    ({"KB_REDIS_URL_FILE": "{two}"}, "KB_REDIS_URL_FILE: {two} holds more than one line"),
    ({"KB_SECRET_KEY": f"{NEW},short"}, "KB_SECRET_KEY: at least 32 characters per key"),
    ({"KB_SECRET_KEY": " , "}, "KB_SECRET_KEY: at least 32 characters per key"),
])
def test_bad_secret_settings_name_the_setting(tmp_path, environ, problem):
    (tmp_path / "empty").write_text("\n")
    (tmp_path / "two").write_text(f"{NEW}\n{OLD}\n")
    paths = {"{empty}": str(tmp_path / "empty"), "{two}": str(tmp_path / "two")}
    environ = {name: paths.get(value, value) for name, value in environ.items()}
    for placeholder, path in paths.items():
        problem = problem.replace(placeholder, path)
    with pytest.raises(SettingsError) as info:
        load_settings(environ)
    assert str(info.value).startswith(problem)
    assert NEW not in str(info.value) and OLD not in str(info.value)


@pytest.fixture
def apps(settings_overrides, clean):
    """An app per KB_SECRET_KEY value, on the same ledger: the deploys of a rotation."""
    made = {}

    def app_with(secret_key: str):
        if secret_key not in made:
            made[secret_key] = create_app({**settings_overrides, "secret_key": secret_key})
            made[secret_key].config["TESTING"] = True
        return made[secret_key]
    yield app_with
    runtime.use(None)
    for app in made.values():
        app.extensions["kraty_bridge"].close()


def _console_status(app, cookie: str) -> int:
    client = app.test_client()
    client.set_cookie("kb_console", cookie, path="/console")
    return client.get("/console/").status_code


def test_rotating_the_secret_key_keeps_console_sessions(apps):
    before = apps(OLD)
    client = before.test_client()
    sign_in(client, before.extensions["kraty_bridge"], "operator")
    old_cookie = client.get_cookie("kb_console", path="/console").value
    assert _console_status(before, old_cookie) == 200

    rotating = apps(f"{NEW},{OLD}")
    assert _console_status(rotating, old_cookie) == 200          # signed with the old key: still signed in
    client = rotating.test_client()
    sign_in(client, rotating.extensions["kraty_bridge"], "viewer")
    new_cookie = client.get_cookie("kb_console", path="/console").value

    after = apps(NEW)                                             # the old key dropped
    assert _console_status(after, new_cookie) == 200              # the rotating deploy signed with the new key
    assert _console_status(after, old_cookie) == 303              # back to the sign-in page


def test_rotating_the_secret_key_keeps_ops_api_cursors(apps, emulator):
    before = apps(OLD)
    runtime.use(before)
    client = before.test_client()
    for n in range(3):
        put_order(client, [{"itemSku": "gems_100", "quantity": 1}], txn=f"rot-{n}")
    viewer = key(before.extensions["kraty_bridge"], "viewer")
    old_cursor = client.get("/v1/fulfilments?limit=1", headers=viewer).get_json()["nextCursor"]

    def next_page(app, cursor):
        return app.test_client().get("/v1/fulfilments", query_string={"limit": 1, "cursor": cursor}, headers=viewer)

    rotating = apps(f"{NEW},{OLD}")
    page = next_page(rotating, old_cursor)
    assert page.status_code == 200 and len(page.get_json()["items"]) == 1
    new_cursor = page.get_json()["nextCursor"]
    after = apps(NEW)
    assert next_page(after, new_cursor).status_code == 200
    refused = next_page(after, old_cursor)
    assert refused.status_code == 400 and refused.get_json()["error"]["code"] == "invalid_cursor"
