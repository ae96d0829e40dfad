"""The sinks file: defaults, filters, every problem reported with its key path, never a secret's value;
the app starts without a sinks file or with an empty one."""
from __future__ import annotations

import base64

import pytest

from app import create_app
from config.settings import ROOT, load_settings
from config.sinks import DEFAULT_SCHEDULE, Sink, SinksError, load_sinks, parse_secret

SECRET = "whsec_" + base64.b64encode(b"k" * 32).decode()


def write(tmp_path, text: str) -> str:
    path = tmp_path / "sinks.toml"
    path.write_text(text)
    return str(path)


def problems(tmp_path, text: str) -> list[tuple[str, str]]:
    with pytest.raises(SinksError) as caught:
        load_sinks(write(tmp_path, text))
    return caught.value.problems


def test_the_example_loads():
    sinks = load_sinks(ROOT / "config" / "examples" / "sinks.toml")
    crm = sinks.get("local_crm")
    assert crm.type == "http" and crm.rate_limit == 10 and crm.headers == (("X-Studio", "demo"),)
    assert "whsec" not in repr(crm)
    analytics = sinks.get("local_analytics")
    assert analytics.type == "segment" and analytics.url == "http://127.0.0.1:8080/v1/batch"
    assert not analytics.takes("player.deleted") and "local-trial-write-key" not in repr(analytics)


def test_defaults(tmp_path):
    sinks = load_sinks(write(tmp_path, f'[sinks.crm]\nurl = "https://crm.example.com/hook/"\nsecret = "{SECRET}"\n'))
    crm = sinks.get("crm")
    assert crm == Sink(name="crm", type="http", url="https://crm.example.com/hook", secret=SECRET)
    assert crm.events == ("*",) and crm.environments == {"production"} and crm.timeout == 15.0
    assert crm.schedule == DEFAULT_SCHEDULE == (0, 5, 300, 1800, 7200, 18000, 36000, 36000)
    assert crm.rate_limit is None and crm.max_attempts == 8
    assert crm.delay_before(1) == 0 and crm.delay_before(2) == 5 and crm.delay_before(9) is None


def test_filters_by_type_glob_and_environment():
    sink = Sink(name="s", type="http", url="http://x", secret=SECRET, events=("purchase.*", "wallet.changed"))
    assert sink.wants("purchase.completed", "production")
    assert sink.wants("wallet.changed", "production")
    assert not sink.wants("inventory.changed", "production")
    assert not sink.wants("purchase.completed", "sandbox")  # sandbox is dropped by default
    both = Sink(name="s", type="http", url="http://x", secret=SECRET, environments=frozenset({"production", "sandbox"}))
    assert both.wants("anything.at_all", "sandbox")


def test_absent_or_empty_file_means_no_sinks(tmp_path):
    assert len(load_sinks(None)) == 0
    assert len(load_sinks(write(tmp_path, "# nothing yet\n"))) == 0
    assert load_settings({}).sinks_path is None
    assert load_settings({"KB_SINKS": "/etc/kb/sinks.toml"}).sinks_path == "/etc/kb/sinks.toml"


def test_the_app_starts_with_no_sinks_and_with_an_empty_file(settings_overrides, clean, tmp_path):
    for sinks_path in (None, write(tmp_path, "")):
        app = create_app({**settings_overrides, "sinks_path": sinks_path})
        svc = app.extensions["kraty_bridge"]
        assert len(svc.sinks) == 0
        svc.close()


def test_a_bad_sinks_file_stops_the_app(settings_overrides, clean, tmp_path):
    with pytest.raises(SinksError, match="sinks.crm.url"):
        create_app({**settings_overrides, "sinks_path": write(tmp_path, f'[sinks.crm]\nsecret = "{SECRET}"\n')})


def test_every_problem_is_reported_with_its_key_path(tmp_path):
    found = problems(tmp_path, """
[sinks.a]
type = "kafka"
url = "ftp://x"
secret = "whsec_c2hvcnQ="
headers = { "webhook-id" = "x", "Bad Name" = "y", "X-Ok" = 3 }
events = []
environments = ["staging"]
schedule = [0, -5]
rate_limit = 0
timeout = 120
colour = "blue"
""")
    paths = {path for path, _ in found}
    assert {"sinks.a.type", "sinks.a.url", "sinks.a.secret", "sinks.a.headers.webhook-id", 'sinks.a.headers."Bad Name"',
            "sinks.a.headers.X-Ok", "sinks.a.events", "sinks.a.environments", "sinks.a.schedule",
            "sinks.a.rate_limit", "sinks.a.timeout", "sinks.a.colour"} <= paths, found
    assert "whsec_c2hvcnQ=" not in str(found)


def test_exactly_one_secret_source(tmp_path, monkeypatch):
    both = problems(tmp_path, f'[sinks.a]\nurl = "http://x"\nsecret = "{SECRET}"\nsecret_env = "KB_SINK_A"\n')
    neither = problems(tmp_path, '[sinks.a]\nurl = "http://x"\n')
    assert ("sinks.a", "exactly one of secret or secret_env is required") in both
    assert ("sinks.a", "exactly one of secret or secret_env is required") in neither


def test_secret_from_the_environment(tmp_path, monkeypatch):
    text = '[sinks.a]\nurl = "http://x"\nsecret_env = "KB_SINK_A"\n'
    assert problems(tmp_path, text) == [("sinks.a.secret_env", "environment variable KB_SINK_A is not set")]
    monkeypatch.setenv("KB_SINK_A", "whsec_bm90LWVub3VnaA==")
    found = problems(tmp_path, text)
    assert found[0][0] == "sinks.a.secret_env" and "bm90LWVub3VnaA" not in str(found)
    monkeypatch.setenv("KB_SINK_A", SECRET)
    assert load_sinks(write(tmp_path, text)).get("a").secret == SECRET


def test_secret_rule():
    assert parse_secret(SECRET) == SECRET
    for bad in ("sk_nope", "whsec_", "whsec_!!!", "whsec_" + base64.b64encode(b"k" * 8).decode(),
                "whsec_" + base64.b64encode(b"k" * 65).decode()):
        with pytest.raises(ValueError):
            parse_secret(bad)
