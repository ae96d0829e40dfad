"""A game's [stripe] table in the catalog: config.stripe_config."""
from dataclasses import FrozenInstanceError

import pytest

from config.catalog import load_catalog
from config.stripe_config import StripeConfig
from tests.test_catalog import EXAMPLE, GAME, GEMS, assert_problem, load_text, problems

STRIPE = """
[games.demo.stripe]
webhook_secrets = ["whsec_one"]
api_key = "sk_test_demo"
"""
WHERE = "games.demo.stripe"


def stripe_text(*, drop=(), **values):
    """GAME + GEMS with a [stripe] table: the minimal one minus ``drop`` plus ``values`` (raw TOML)."""
    lines = [line for line in STRIPE.strip().splitlines()[1:] if line.split(" = ")[0] not in drop]
    lines += [f"{key} = {value}" for key, value in values.items()]
    return GAME + GEMS + "\n[games.demo.stripe]\n" + "\n".join(lines) + "\n"


def load_stripe(tmp_path, **kwargs) -> StripeConfig:
    return load_text(tmp_path, stripe_text(**kwargs)).game("demo").stripe


# ---------------------------------------------------------------- good files
def test_example_game_has_stripe():
    catalog = load_catalog(EXAMPLE)
    stripe = catalog.game("demo").stripe
    assert stripe == StripeConfig(webhook_secrets=("whsec_demo_test_secret",), api_key="sk_test_demo",
                                  test_api_key=None, player_metadata_key="player_id", partial_refunds="flag",
                                  disputes="revoke_on_open")
    assert catalog.stripe_games() == [catalog.game("demo")]
    game = catalog.game("demo")
    assert game.by_store_id("stripe", "price_vip_monthly") is game.by_store_id("stripe", "prod_vip")


def test_defaults_and_game_without_stripe(tmp_path):
    stripe = load_stripe(tmp_path)
    assert stripe.webhook_secrets == ("whsec_one",) and stripe.api_key == "sk_test_demo"
    assert stripe.test_api_key is None and stripe.player_metadata_key == "player_id"
    assert stripe.partial_refunds == "flag" and stripe.disputes == "revoke_on_open"
    catalog = load_text(tmp_path, GAME + GEMS)
    assert catalog.game("demo").stripe is None and catalog.stripe_games() == []


def test_every_key_given(tmp_path):
    stripe = load_stripe(tmp_path, drop=("webhook_secrets", "api_key"),
                         webhook_secrets='["whsec_live", "whsec_test", "whsec_live"]', api_key='"rk_live_abc"',
                         test_api_key='"rk_test_abc"', player_metadata_key='"kraty_player"',
                         partial_refunds='"proportional"', disputes='"revoke_when_lost"')
    assert stripe.webhook_secrets == ("whsec_live", "whsec_test")  # order kept, duplicates dropped
    assert (stripe.api_key, stripe.test_api_key) == ("rk_live_abc", "rk_test_abc")
    assert stripe.player_metadata_key == "kraty_player"
    assert (stripe.partial_refunds, stripe.disputes) == ("proportional", "revoke_when_lost")


@pytest.mark.parametrize("key", ["sk_test_x", "sk_live_x", "rk_test_x", "rk_live_x"])
def test_every_api_key_kind_is_accepted(tmp_path, key):
    assert load_stripe(tmp_path, drop=("api_key",), api_key=f'"{key}"').api_key == key


def test_stripe_games_in_file_order(tmp_path):
    def game(ns, stripe=""):
        return (GAME + GEMS + stripe).replace("games.demo", f"games.{ns}")

    text = game("zeta", STRIPE) + game("plain") + game("alpha", STRIPE)
    assert [g.namespace for g in load_text(tmp_path, text).stripe_games()] == ["zeta", "alpha"]


# ---------------------------------------------------------------- the objects
def test_key_for():
    base = {"webhook_secrets": ("whsec_a",), "player_metadata_key": "player_id", "partial_refunds": "flag",
            "disputes": "revoke_on_open"}
    live_with_test = StripeConfig(api_key="sk_live_a", test_api_key="sk_test_b", **base)
    assert live_with_test.key_for(livemode=True) == "sk_live_a"
    assert live_with_test.key_for(livemode=False) == "sk_test_b"
    only_one = StripeConfig(api_key="sk_test_a", test_api_key=None, **base)
    assert only_one.key_for(True) == only_one.key_for(False) == "sk_test_a"


def test_repr_hides_secrets_and_objects_are_frozen_and_hashable(tmp_path):
    text = stripe_text(test_api_key='"sk_test_other"')
    game = load_text(tmp_path, text).game("demo")
    for shown in (repr(game.stripe), repr(game), repr(load_text(tmp_path, text))):
        assert "whsec_one" not in shown and "sk_test_demo" not in shown and "sk_test_other" not in shown
    assert "player_metadata_key='player_id'" in repr(game.stripe)
    with pytest.raises(FrozenInstanceError):
        game.stripe.api_key = "x"
    assert hash(load_text(tmp_path, text)) == hash(load_text(tmp_path, text))
    assert load_text(tmp_path, text) == load_text(tmp_path, text)
    assert load_text(tmp_path, text) != load_text(tmp_path, stripe_text(disputes='"revoke_when_lost"'))


# ---------------------------------------------------------------- environment variables
def test_secrets_and_keys_from_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("KB_TEST_WHSEC", " whsec_a ,, whsec_b,whsec_a , ")
    monkeypatch.setenv("KB_TEST_STRIPE_KEY", " rk_live_key\n")
    monkeypatch.setenv("KB_TEST_STRIPE_TEST_KEY", "sk_test_key")
    stripe = load_stripe(tmp_path, drop=("webhook_secrets", "api_key"), webhook_secrets_env='"KB_TEST_WHSEC"',
                         api_key_env='"KB_TEST_STRIPE_KEY"', test_api_key_env='"KB_TEST_STRIPE_TEST_KEY"')
    assert stripe.webhook_secrets == ("whsec_a", "whsec_b")
    assert (stripe.api_key, stripe.test_api_key) == ("rk_live_key", "sk_test_key")
    assert stripe.key_for(False) == "sk_test_key" and stripe.key_for(True) == "rk_live_key"


@pytest.mark.parametrize("key", ["webhook_secrets_env", "api_key_env", "test_api_key_env"])
def test_missing_environment_variable(tmp_path, monkeypatch, key):
    monkeypatch.delenv("KB_TEST_UNSET", raising=False)
    drop = (key.removesuffix("_env"),)
    assert_problem(problems(tmp_path, stripe_text(drop=drop, **{key: '"KB_TEST_UNSET"'})),
                   f"{WHERE}.{key}", "environment variable KB_TEST_UNSET is not set")
    monkeypatch.setenv("KB_TEST_UNSET", "")
    assert_problem(problems(tmp_path, stripe_text(drop=drop, **{key: '"KB_TEST_UNSET"'})),
                   f"{WHERE}.{key}", "environment variable KB_TEST_UNSET is not set")


@pytest.mark.parametrize("key", ["webhook_secrets_env", "api_key_env", "test_api_key_env"])
@pytest.mark.parametrize("name", ['"not a name"', '"1ABC"', "5"])
def test_environment_variable_name_must_be_a_name(tmp_path, key, name):
    text = stripe_text(drop=(key.removesuffix("_env"),), **{key: name})
    assert_problem(problems(tmp_path, text), f"{WHERE}.{key}", "must be an environment variable name")


@pytest.mark.parametrize("key, value, fragment", [
    ("webhook_secrets_env", " , ,", "must hold a comma-separated list of webhook signing secrets"),
    ("webhook_secrets_env", "whsec_a,sk_test_oops", "item 2 is not one"),
    ("webhook_secrets_env", "whsec_a b", "item 1 is not one"),
    ("api_key_env", "pk_test_publishable", "must be a secret or restricted API key starting with sk_test_"),
    ("test_api_key_env", "sk_live_not_test", "must be a test-mode secret or restricted API key"),
])
def test_bad_values_in_environment(tmp_path, monkeypatch, key, value, fragment):
    monkeypatch.setenv("KB_TEST_STRIPE_VALUE", value)
    error = problems(tmp_path, stripe_text(drop=(key.removesuffix("_env"),), **{key: '"KB_TEST_STRIPE_VALUE"'}))
    assert_problem(error, f"{WHERE}.{key}", "environment variable KB_TEST_STRIPE_VALUE must ")
    assert_problem(error, f"{WHERE}.{key}", fragment)
    assert all(part not in str(error) for part in value.split(",") if part.strip())  # values are never echoed


# ---------------------------------------------------------------- bad values
@pytest.mark.parametrize("values, path, fragment", [
    ({"webhook_secrets": "[]"}, "webhook_secrets", "must be a non-empty list of webhook signing secrets"),
    ({"webhook_secrets": '"whsec_not_a_list"'}, "webhook_secrets", "must be a non-empty list"),
    ({"webhook_secrets": '["whsec_ok", "sk_test_oops"]'}, "webhook_secrets[1]", "starting with whsec_"),
    ({"webhook_secrets": '["whsec_"]'}, "webhook_secrets[0]", "starting with whsec_"),
    ({"webhook_secrets": '["whsec_a b"]'}, "webhook_secrets[0]", "starting with whsec_"),
    ({"webhook_secrets": "[1]"}, "webhook_secrets[0]", "starting with whsec_"),
    ({"api_key": '"pk_live_publishable"'}, "api_key", "starting with sk_test_, sk_live_, rk_test_ or rk_live_"),
    ({"api_key": '"sk_test_"'}, "api_key", "starting with sk_test_"),
    ({"api_key": '"whsec_one"'}, "api_key", "starting with sk_test_"),
    ({"api_key": "42"}, "api_key", "starting with sk_test_"),
    ({"test_api_key": '"sk_live_abc"'}, "test_api_key", "starting with sk_test_ or rk_test_"),
    ({"test_api_key": '"rk_live_abc"'}, "test_api_key", "starting with sk_test_ or rk_test_"),
    ({"player_metadata_key": '""'}, "player_metadata_key", "must be 1-40 characters"),
    ({"player_metadata_key": '"   "'}, "player_metadata_key", "not blank"),
    ({"player_metadata_key": f'"{"k" * 41}"'}, "player_metadata_key", "must be 1-40 characters"),
    ({"player_metadata_key": '"player[id]"'}, "player_metadata_key", "without [ or ]"),
    ({"player_metadata_key": "7"}, "player_metadata_key", "must be 1-40 characters"),
    ({"partial_refunds": '"ignore"'}, "partial_refunds", "must be one of flag, proportional"),
    ({"disputes": '"never"'}, "disputes", "must be one of revoke_on_open, revoke_when_lost"),
    ({"disputes": "true"}, "disputes", "must be one of revoke_on_open, revoke_when_lost"),
    ({"webhook_secret": '"whsec_typo"'}, "webhook_secret", "unknown key"),
])
def test_bad_values(tmp_path, values, path, fragment):
    drop = tuple(key for key in values if key in ("webhook_secrets", "api_key"))
    error = problems(tmp_path, stripe_text(drop=drop, **values))
    assert_problem(error, f"{WHERE}.{path}", fragment)
    assert "sk_test_oops" not in str(error) and "pk_live_publishable" not in str(error)


def test_player_metadata_key_of_40_characters_is_fine(tmp_path):
    assert load_stripe(tmp_path, player_metadata_key=f'"{"k" * 40}"').player_metadata_key == "k" * 40


@pytest.mark.parametrize("drop, values, message", [
    (("webhook_secrets",), {}, "exactly one of webhook_secrets or webhook_secrets_env is required"),
    ((), {"webhook_secrets_env": '"HOME"'}, "exactly one of webhook_secrets or webhook_secrets_env is required"),
    (("api_key",), {}, "exactly one of api_key or api_key_env is required"),
    ((), {"api_key_env": '"HOME"'}, "exactly one of api_key or api_key_env is required"),
    ((), {"test_api_key": '"sk_test_a"', "test_api_key_env": '"HOME"'},
     "at most one of test_api_key or test_api_key_env may be given"),
])
def test_one_source_per_secret(tmp_path, drop, values, message):
    assert_problem(problems(tmp_path, stripe_text(drop=drop, **values)), WHERE, message)


def test_stripe_must_be_a_table(tmp_path):
    text = GAME.replace('server_key = "kraty_sk_demo"', 'server_key = "kraty_sk_demo"\nstripe = "yes"') + GEMS
    assert_problem(problems(tmp_path, text), WHERE, "must be a table")


def test_stripe_problems_are_reported_with_the_rest(tmp_path):
    text = stripe_text(disputes='"never"').replace("amount = 100", "amount = -1")
    lines = str(problems(tmp_path, text)).splitlines()
    assert any(f"{WHERE}.disputes: " in line for line in lines)
    assert any("games.demo.products.gems_100.grants[0].amount: " in line for line in lines)
