"""A game's [app_store] table in the catalog (config.app_store_config), the root pin (check_pins) and
the KB_APPLE_ROOT_SHA256 setting."""
from dataclasses import FrozenInstanceError

import pytest

from config.app_store_config import (
    APPLE_ROOT_CA_G3_SHA256,
    AppStoreConfig,
    check_pins,
    parse_fingerprints,
)
from config.catalog import load_catalog
from config.settings import SettingsError, load_settings
from tests.support.apple_ca import default_chain, other_chain
from tests.test_catalog import EXAMPLE, GAME, GEMS, assert_problem, load_text, problems

WHERE = "games.demo.app_store"


@pytest.fixture
def roots(tmp_path):
    """The catalog's directory holds apple/root.cer (DER), apple/root.pem (PEM, same cert) and other.cer."""
    (tmp_path / "apple").mkdir()
    default_chain().write_root(tmp_path / "apple", "root.cer")
    default_chain().write_root(tmp_path / "apple", "root.pem", pem=True)
    other_chain().write_root(tmp_path, "other.cer")
    return tmp_path


def table(**values) -> str:
    """GAME + GEMS with an [app_store] table: the minimal one overridden by ``values`` (raw TOML; None drops a key)."""
    keys = {"bundle_id": '"com.demo.game"', "app_apple_id": "1234567890", "root_certificates": '["apple/root.cer"]'}
    keys.update(values)
    lines = [f"{key} = {value}" for key, value in keys.items() if value is not None]
    return GAME + GEMS + "\n[games.demo.app_store]\n" + "\n".join(lines) + "\n"


def load_app_store(tmp_path, **values) -> AppStoreConfig:
    return load_text(tmp_path, table(**values)).game("demo").app_store


# ---------------------------------------------------------------- good files
def test_minimal_table_and_defaults(roots):
    config = load_app_store(roots)
    assert config.bundle_id == "com.demo.game" and config.app_apple_id == 1234567890
    assert config.allow_production is True and config.online_checks is False and config.player_ids == "linked"
    assert config.root_certificates == (default_chain().root.der,)
    assert config.root_paths == (str(roots / "apple" / "root.cer"),)
    assert config.fingerprints() == (default_chain().root.sha256,)


def test_every_key_given_pem_is_read_as_der(roots):
    config = load_app_store(roots, app_apple_id="9999999999", allow_production="false", online_checks="true",
                            player_ids='"app_account_token"',
                            root_certificates=f'["apple/root.pem", "{roots / "other.cer"}"]')
    assert config.app_apple_id == 9999999999  # app Apple ids outgrow 32 bits
    assert (config.allow_production, config.online_checks, config.player_ids) == (False, True, "app_account_token")
    assert config.root_certificates == (default_chain().root.der, other_chain().root.der)
    assert config.root_paths == (str(roots / "apple" / "root.pem"), str(roots / "other.cer"))


def test_paths_are_relative_to_the_catalog_file(roots, monkeypatch, tmp_path_factory):
    monkeypatch.chdir(tmp_path_factory.mktemp("elsewhere"))
    assert load_app_store(roots).root_certificates == (default_chain().root.der,)


def test_no_app_production_needs_no_app_apple_id(roots):
    config = load_app_store(roots, app_apple_id=None, allow_production="false")
    assert config.app_apple_id is None and config.allow_production is False


def test_game_without_table_and_lookups(roots):
    catalog = load_text(roots, GAME + GEMS)
    assert catalog.game("demo").app_store is None and catalog.app_store_games() == []
    other = (GAME + GEMS).replace("games.demo", "games.other") + (
        '[games.other.app_store]\nbundle_id = "com.other.game"\nallow_production = false\n'
        'root_certificates = ["other.cer"]\n')
    two = table() + (GAME + GEMS).replace("games.demo", "games.plain") + other
    catalog = load_text(roots, two)
    assert [g.namespace for g in catalog.app_store_games()] == ["demo", "other"]
    assert catalog.by_bundle_id("com.other.game") is catalog.game("other")
    assert catalog.by_bundle_id("com.demo.game") is catalog.game("demo") and catalog.by_bundle_id("nope") is None


def test_example_catalog_loads_without_apple_files_and_shows_the_table_commented():
    catalog = load_catalog(EXAMPLE)
    assert catalog.app_store_games() == []
    text = EXAMPLE.read_text()
    assert "# [games.demo.app_store]" in text and "\n[games.demo.app_store]" not in text
    for key in ("bundle_id", "app_apple_id", "allow_production", "root_certificates", "online_checks", "player_ids"):
        assert f"# {key} = " in text, key


def test_objects_are_frozen_hashable_and_repr_leaves_out_certificates(roots):
    catalog = load_text(roots, table())
    config = catalog.game("demo").app_store
    assert "root_certificates" not in repr(config) and "bundle_id='com.demo.game'" in repr(config)
    with pytest.raises(FrozenInstanceError):
        config.bundle_id = "x"
    assert hash(catalog) == hash(load_text(roots, table())) and catalog == load_text(roots, table())
    assert catalog != load_text(roots, table(player_ids='"app_account_token"'))


# ---------------------------------------------------------------- problems
@pytest.mark.parametrize("values, key, fragment", [
    ({"bundle_id": None}, "bundle_id", "is required"),
    ({"bundle_id": '"com demo"'}, "bundle_id", "must be an app's bundle id"),
    ({"bundle_id": "7"}, "bundle_id", "must be an app's bundle id"),
    ({"app_apple_id": None}, "app_apple_id", "is required while allow_production is true"),
    ({"app_apple_id": "0"}, "app_apple_id", "must be a positive integer"),
    ({"app_apple_id": "-5"}, "app_apple_id", "must be a positive integer"),
    ({"app_apple_id": "true"}, "app_apple_id", "must be a positive integer"),
    ({"app_apple_id": '"1234567890"'}, "app_apple_id", "must be a positive integer"),
    ({"allow_production": '"yes"'}, "allow_production", "must be true or false"),
    ({"online_checks": "1"}, "online_checks", "must be true or false"),
    ({"player_ids": '"email"'}, "player_ids", "must be one of linked, app_account_token"),
    ({"root_certificates": None}, "root_certificates", "is required"),
    ({"root_certificates": "[]"}, "root_certificates", "must be a non-empty list of certificate file names"),
    ({"root_certificates": '"apple/root.cer"'}, "root_certificates", "must be a non-empty list"),
    ({"root_certificates": '["apple/root.cer", 5]'}, "root_certificates[1]", "must be a file name"),
    ({"root_certificates": '["apple/missing.cer"]'}, "root_certificates[0]", "cannot read"),
    ({"root_certificates": '["catalog.toml"]'}, "root_certificates[0]", "is not an X.509 certificate (DER or PEM)"),
    ({"webhook_secret": '"x"'}, "webhook_secret", "unknown key"),
])
def test_problems(roots, values, key, fragment):
    assert_problem(problems(roots, table(**values)), f"{WHERE}.{key}", fragment)


def test_pem_file_with_two_certificates(roots):
    (roots / "two.pem").write_bytes(default_chain().root.pem + other_chain().root.pem)
    assert_problem(problems(roots, table(root_certificates='["two.pem"]')), f"{WHERE}.root_certificates[0]",
                   "holds 2 certificates; give one certificate per file")


def test_missing_file_names_the_resolved_path(roots):
    error = problems(roots, table(root_certificates='["apple/missing.cer"]'))
    assert str(roots / "apple" / "missing.cer") in str(error)


def test_table_must_be_a_table(roots):
    text = GAME + 'app_store = "com.demo.game"\n' + GEMS
    assert_problem(problems(roots, text), WHERE, "must be a table")


def test_bundle_ids_are_unique_across_games(roots):
    text = table() + table().replace("games.demo", "games.second")
    assert_problem(problems(roots, text), "games.second.app_store.bundle_id",
                   "'com.demo.game' is already the bundle_id of game demo")


def test_reported_with_the_other_catalog_problems(roots):
    text = table(bundle_id=None).replace('type = "COINS"', 'type = "NOPE"')
    error = problems(roots, text)
    assert_problem(error, f"{WHERE}.bundle_id", "is required")
    assert_problem(error, "games.demo.products.gems_100.type", "must be one of")


# ---------------------------------------------------------------- the pin
def test_check_pins_accepts_a_pinned_root(roots):
    catalog = load_text(roots, table(root_certificates='["other.cer", "apple/root.cer"]'))
    assert check_pins(catalog, {default_chain().root.sha256}) == []
    assert check_pins(catalog, {default_chain().root.sha256.lower()}) == []  # case does not matter
    config = catalog.game("demo").app_store
    assert config.pinned_roots({default_chain().root.sha256}) == (default_chain().root.der,)


def test_check_pins_refuses_a_production_game_without_one(roots):
    catalog = load_text(roots, table(root_certificates='["other.cer"]'))
    lines = check_pins(catalog, {APPLE_ROOT_CA_G3_SHA256})
    assert len(lines) == 1
    line = lines[0]
    assert line.startswith(f"{catalog.source}: {WHERE}.root_certificates: game demo takes Production")
    assert str(roots / "other.cer") in line and APPLE_ROOT_CA_G3_SHA256 in line and "\n" not in line
    assert check_pins(catalog, f"{default_chain().root.sha256},{other_chain().root.sha256}") == []


def test_check_pins_ignores_games_without_production(roots):
    catalog = load_text(roots, table(allow_production="false", app_apple_id=None, root_certificates='["other.cer"]'))
    assert check_pins(catalog, {APPLE_ROOT_CA_G3_SHA256}) == []
    assert check_pins(load_text(roots, GAME + GEMS), {APPLE_ROOT_CA_G3_SHA256}) == []


def test_parse_fingerprints():
    colons = ":".join(APPLE_ROOT_CA_G3_SHA256[i:i + 2] for i in range(0, 64, 2)).lower()
    assert parse_fingerprints(f" {colons} ,, {'ab' * 32}") == {APPLE_ROOT_CA_G3_SHA256, "AB" * 32}
    assert parse_fingerprints(["ab" * 32]) == {"AB" * 32}
    for bad in ("", " , ", "ab" * 31, "zz" * 32, f"{APPLE_ROOT_CA_G3_SHA256},12"):
        with pytest.raises(ValueError):
            parse_fingerprints(bad)


# ---------------------------------------------------------------- the setting
def test_setting_defaults_to_apple_root_ca_g3():
    assert load_settings({}).apple_root_sha256 == frozenset({APPLE_ROOT_CA_G3_SHA256})
    assert APPLE_ROOT_CA_G3_SHA256 == "63343ABFB89A6A03EBB57E9B3F5FA7BE7C4F5C756F3017B3A8C488C3653E9179"


def test_setting_from_environment():
    settings = load_settings({"KB_APPLE_ROOT_SHA256": f"{'ab' * 32}, {APPLE_ROOT_CA_G3_SHA256.lower()}"})
    assert settings.apple_root_sha256 == {"AB" * 32, APPLE_ROOT_CA_G3_SHA256}
    assert load_settings({}, apple_root_sha256="cd" * 32).apple_root_sha256 == {"CD" * 32}


@pytest.mark.parametrize("value", ["abc", "ab" * 32 + ",xyz", ", ,"])
def test_bad_setting_names_the_setting(value):
    with pytest.raises(SettingsError) as info:
        load_settings({"KB_APPLE_ROOT_SHA256": value})
    assert str(info.value).startswith("KB_APPLE_ROOT_SHA256: ")
