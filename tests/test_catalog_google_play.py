"""A game's [google_play] table in the catalog (config.google_play_config) and the KB_GOOGLE_* settings."""
import json
from dataclasses import FrozenInstanceError

import pytest

from config.catalog import load_catalog
from config.google_play_config import GooglePlayConfig, parse_service_account
from config.settings import SettingsError, load_settings
from tests.support.google_push_tokens import service_account_info
from tests.test_catalog import EXAMPLE, GAME, GEMS, assert_problem, load_text, problems

WHERE = "games.demo.google_play"
SWORD = """
[games.demo.products.sword]
type = "INGAMEITEM"
grants = [{ item = "sword", quantity = 1 }]
"""


@pytest.fixture
def keys(tmp_path):
    """The catalog's directory holds google/sa.json (a service account key) and other.json (another one)."""
    (tmp_path / "google").mkdir()
    (tmp_path / "google" / "sa.json").write_text(json.dumps(service_account_info()))
    (tmp_path / "other.json").write_text(json.dumps(service_account_info(email="other@p.iam.gserviceaccount.com")))
    return tmp_path


def table(**values) -> str:
    """GAME + GEMS + SWORD with a [google_play] table: the minimal one overridden by ``values`` (raw TOML;
    None drops a key)."""
    keys = {"package_name": '"com.demo.game"', "service_account_file": '"google/sa.json"',
            "push_audience": '"https://bridge.example.com/webhooks/google-play"',
            "push_service_account": '"pubsub-push@demo-project.iam.gserviceaccount.com"'}
    keys.update(values)
    lines = [f"{key} = {value}" for key, value in keys.items() if value is not None]
    return GAME + GEMS + SWORD + "\n[games.demo.google_play]\n" + "\n".join(lines) + "\n"


def load_google_play(tmp_path, **values) -> GooglePlayConfig:
    return load_text(tmp_path, table(**values)).game("demo").google_play


# ---------------------------------------------------------------- good files
def test_minimal_table_and_defaults(keys):
    config = load_google_play(keys)
    assert config.package_name == "com.demo.game"
    assert config.push_audience == "https://bridge.example.com/webhooks/google-play"
    assert config.push_service_account == "pubsub-push@demo-project.iam.gserviceaccount.com"
    assert config.player_ids == "linked" and config.non_consumable == frozenset()
    assert config.service_account_info == service_account_info()
    assert config.service_account_email == "kraty-bridge@demo-project.iam.gserviceaccount.com"
    assert config.service_account_source == str(keys / "google" / "sa.json")
    assert config.consumes("gems_100") and config.consumes("sword")


def test_every_key_given(keys):
    config = load_google_play(keys, player_ids='"obfuscated_account_id"', non_consumable='["sword", "sword"]',
                              service_account_file=f'"{keys / "other.json"}"')
    assert config.player_ids == "obfuscated_account_id" and config.non_consumable == {"sword"}
    assert not config.consumes("sword") and config.consumes("gems_100")
    assert config.service_account_email == "other@p.iam.gserviceaccount.com"


def test_service_account_from_environment(keys, monkeypatch):
    monkeypatch.setenv("GOOGLE_SA_DEMO", json.dumps(service_account_info(token_uri=None)))
    config = load_google_play(keys, service_account_file=None, service_account_env='"GOOGLE_SA_DEMO"')
    assert config.service_account_source == "env:GOOGLE_SA_DEMO" and "token_uri" not in config.service_account_info


def test_credentials_info_overrides_the_token_uri_on_a_copy(keys):
    config = load_google_play(keys)
    info = config.credentials_info("http://127.0.0.1:9/token")
    assert info["token_uri"] == "http://127.0.0.1:9/token"
    assert config.service_account_info["token_uri"] == "https://oauth2.googleapis.com/token"
    assert config.credentials_info() == config.service_account_info and config.credentials_info() is not \
        config.service_account_info


def test_the_key_works_with_google_auth(keys):
    from google.oauth2 import service_account
    config = load_google_play(keys)
    credentials = service_account.Credentials.from_service_account_info(
        config.credentials_info("http://127.0.0.1:9/token"),
        scopes=["https://www.googleapis.com/auth/androidpublisher"])
    assert credentials.service_account_email == config.service_account_email
    assert credentials._token_uri == "http://127.0.0.1:9/token"


def test_game_without_table_and_lookups(keys):
    catalog = load_text(keys, GAME + GEMS)
    assert catalog.game("demo").google_play is None and catalog.google_play_games() == []
    assert catalog.by_package_name("com.demo.game") is None
    other = table(package_name='"com.other.game"', service_account_file='"other.json"').replace(
        "games.demo", "games.other")
    two = table() + (GAME + GEMS).replace("games.demo", "games.plain") + other
    catalog = load_text(keys, two)
    assert [g.namespace for g in catalog.google_play_games()] == ["demo", "other"]
    assert catalog.by_package_name("com.other.game") is catalog.game("other")
    assert catalog.by_package_name("com.demo.game") is catalog.game("demo") and catalog.by_package_name("x.y") is None


def test_paths_are_relative_to_the_catalog_file(keys, monkeypatch, tmp_path_factory):
    monkeypatch.chdir(tmp_path_factory.mktemp("elsewhere"))
    assert load_google_play(keys).service_account_email == "kraty-bridge@demo-project.iam.gserviceaccount.com"


def test_example_catalog_loads_without_google_files_and_shows_the_table_commented():
    catalog = load_catalog(EXAMPLE)
    assert catalog.google_play_games() == []
    text = EXAMPLE.read_text()
    assert "# [games.demo.google_play]" in text and "\n[games.demo.google_play]" not in text
    for key in ("package_name", "service_account_file", "push_audience", "push_service_account", "player_ids",
                "non_consumable"):
        assert f"# {key} = " in text, key


def test_objects_are_frozen_hashable_and_repr_hides_the_key(keys):
    catalog = load_text(keys, table())
    config = catalog.game("demo").google_play
    assert "PRIVATE KEY" not in repr(config) and "service_account_info" not in repr(config)
    assert "package_name='com.demo.game'" in repr(config)
    with pytest.raises(FrozenInstanceError):
        config.package_name = "x"
    assert hash(catalog) == hash(load_text(keys, table())) and catalog == load_text(keys, table())
    assert catalog != load_text(keys, table(player_ids='"obfuscated_account_id"'))
    other_key = load_text(keys, table(service_account_file='"other.json"'))
    assert other_key != catalog  # a different key is a different config


# ---------------------------------------------------------------- problems
@pytest.mark.parametrize("values, key, fragment", [
    ({"package_name": None}, "package_name", "is required"),
    ({"package_name": '"game"'}, "package_name", "must be an Android package name"),
    ({"package_name": '"com.demo game"'}, "package_name", "must be an Android package name"),
    ({"package_name": '"com.1demo"'}, "package_name", "must be an Android package name"),
    ({"package_name": "5"}, "package_name", "must be an Android package name"),
    ({"push_audience": None}, "push_audience", "is required"),
    ({"push_audience": '""'}, "push_audience", "must be the audience of the Pub/Sub push subscription"),
    ({"push_audience": '"a b"'}, "push_audience", "must be the audience"),
    ({"push_service_account": None}, "push_service_account", "is required"),
    ({"push_service_account": '"pubsub-push"'}, "push_service_account", "must be the e-mail address"),
    ({"player_ids": '"email"'}, "player_ids", "must be one of linked, obfuscated_account_id"),
    ({"non_consumable": '"sword"'}, "non_consumable", "must be a list of product SKUs"),
    ({"non_consumable": '["sword", "no such"]'}, "non_consumable[1]", "invalid SKU"),
    ({"non_consumable": '["sword", "shield"]'}, "non_consumable[1]", "unknown product 'shield' (not in games.demo.products)"),
    ({"service_account_file": '""'}, "service_account_file", "must be the name of a service account JSON key file"),
    ({"service_account_file": '"google/missing.json"'}, "service_account_file", "cannot read"),
    ({"service_account_file": '"catalog.toml"'}, "service_account_file", "must hold a service account JSON key (it is not JSON)"),
    ({"service_account_env": '"X"'}, "", "exactly one of service_account_file or service_account_env is required"),
    ({"service_account_file": None}, "", "exactly one of service_account_file or service_account_env is required"),
    ({"service_account_file": None, "service_account_env": '"KB_TEST_UNSET_GOOGLE_SA"'}, "service_account_env",
     "environment variable KB_TEST_UNSET_GOOGLE_SA is not set"),
    ({"service_account_file": None, "service_account_env": '"bad name"'}, "service_account_env",
     "must be an environment variable name"),
    ({"bundle_id": '"x"'}, "bundle_id", "unknown key"),
])
def test_problems(keys, values, key, fragment):
    assert_problem(problems(keys, table(**values)), f"{WHERE}.{key}" if key else WHERE, fragment)


@pytest.mark.parametrize("info, fragment", [
    ([], "(a JSON object)"),
    ({**service_account_info(), "type": "authorized_user"}, '("type": "service_account")'),
    (service_account_info(client_email=None), "with a client_email"),
    (service_account_info(private_key=None), "with a private_key"),
    (service_account_info(private_key="-----BEGIN PRIVATE KEY-----\nnope\n-----END PRIVATE KEY-----\n"),
     "whose private_key is a PEM RSA private key"),
    (service_account_info(token_uri="oauth2.googleapis.com/token"), "whose token_uri is an http(s) URL"),
])
def test_bad_service_account_files(keys, info, fragment):
    (keys / "bad.json").write_text(json.dumps(info))
    error = problems(keys, table(service_account_file='"bad.json"'))
    assert_problem(error, f"{WHERE}.service_account_file", f"{keys / 'bad.json'} must hold a service account JSON key")
    assert_problem(error, f"{WHERE}.service_account_file", fragment)
    assert "BEGIN" not in str(error)  # never the key


def test_bad_service_account_in_the_environment_names_the_variable_only(keys, monkeypatch):
    secret = json.dumps(service_account_info(type="user"))
    monkeypatch.setenv("GOOGLE_SA_DEMO", secret)
    error = problems(keys, table(service_account_file=None, service_account_env='"GOOGLE_SA_DEMO"'))
    assert_problem(error, f"{WHERE}.service_account_env",
                   'environment variable GOOGLE_SA_DEMO must hold a service account JSON key ("type": "service_account")')
    assert "PRIVATE KEY" not in str(error)


def test_parse_service_account():
    assert parse_service_account(json.dumps(service_account_info()).encode()) == service_account_info()
    for bad in ("", "{", "null", '"x"'):
        with pytest.raises(ValueError):
            parse_service_account(bad)


def test_table_must_be_a_table(keys):
    text = GAME + 'google_play = "com.demo.game"\n' + GEMS
    assert_problem(problems(keys, text), WHERE, "must be a table")


def test_package_names_are_unique_across_games(keys):
    text = table() + table().replace("games.demo", "games.second")
    assert_problem(problems(keys, text), "games.second.google_play.package_name",
                   "'com.demo.game' is already the package_name of game demo")


def test_reported_with_the_other_catalog_problems(keys):
    text = table(package_name=None).replace('type = "COINS"', 'type = "NOPE"')
    error = problems(keys, text)
    assert_problem(error, f"{WHERE}.package_name", "is required")
    assert_problem(error, "games.demo.products.gems_100.type", "must be one of")


def test_both_store_tables_together(keys):
    from tests.support.apple_ca import default_chain
    (keys / "apple").mkdir()
    default_chain().write_root(keys / "apple", "root.cer")
    text = table() + ('[games.demo.app_store]\nbundle_id = "com.demo.game"\nallow_production = false\n'
                      'root_certificates = ["apple/root.cer"]\n')
    game = load_text(keys, text).game("demo")
    assert game.google_play.package_name == "com.demo.game" and game.app_store.bundle_id == "com.demo.game"


# ---------------------------------------------------------------- the settings
def test_google_setting_defaults():
    settings = load_settings({})
    assert settings.google_certs_url == "https://www.googleapis.com/oauth2/v1/certs"
    assert settings.google_api_base == "https://androidpublisher.googleapis.com"
    assert settings.google_token_uri is None


def test_google_settings_from_environment():
    settings = load_settings({"KB_GOOGLE_CERTS_URL": "http://127.0.0.1:9/certs",
                              "KB_GOOGLE_API_BASE": "http://127.0.0.1:9/google/",
                              "KB_GOOGLE_TOKEN_URI": "http://127.0.0.1:9/google/token"})
    assert settings.google_certs_url == "http://127.0.0.1:9/certs"
    assert settings.google_api_base == "http://127.0.0.1:9/google"
    assert settings.google_token_uri == "http://127.0.0.1:9/google/token"
    assert load_settings({"KB_GOOGLE_TOKEN_URI": ""}).google_token_uri is None
    assert load_settings({}, google_token_uri="").google_token_uri is None


@pytest.mark.parametrize("name", ["KB_GOOGLE_CERTS_URL", "KB_GOOGLE_API_BASE", "KB_GOOGLE_TOKEN_URI"])
@pytest.mark.parametrize("value, problem", [("googleapis.com", "expected an http:// or https:// URL"),
                                            ("ftp://x.example", "expected an http:// or https:// URL"),
                                            ("  ", "must not be empty")])
def test_bad_google_settings_name_the_setting(name, value, problem):
    with pytest.raises(SettingsError) as info:
        load_settings({name: value})
    assert str(info.value).startswith(f"{name}: ") and problem in str(info.value)
