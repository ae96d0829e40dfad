from pathlib import Path

import pytest

from config.catalog import CatalogError, Component, Grant, load_catalog

EXAMPLE = Path(__file__).resolve().parent.parent / "config" / "examples" / "catalog.toml"

GAME = """
[games.demo]
kraty_base_url = "http://127.0.0.1:8100"
server_key = "kraty_sk_demo"
"""
GEMS = """
[games.demo.products.gems_100]
type = "COINS"
grants = [{ currency = "gems", amount = 100 }]
"""


def write(tmp_path, text, name="catalog.toml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def load_text(tmp_path, text):
    return load_catalog(write(tmp_path, text))


def problems(tmp_path, text):
    with pytest.raises(CatalogError) as info:
        load_text(tmp_path, text)
    return info.value


def assert_problem(error, path, fragment):
    lines = str(error).splitlines()
    assert any(line.startswith(f"{error.source}: {path}: ") and fragment in line for line in lines), str(error)


# ---------------------------------------------------------------- the example
def test_example_loads_and_covers_every_supported_type():
    catalog = load_catalog(EXAMPLE)
    game = catalog.game("demo")
    assert catalog.source == str(EXAMPLE) and catalog.game("nope") is None
    assert game.kraty_base_url == "http://127.0.0.1:8100" and game.server_key == "kraty_sk_demo"
    assert game.allow_sandbox is True and game.negative_balance_policy == "fail"
    types = {p.type for p in game.products.values() if p.supported}
    assert types == {"COINS", "INGAMEITEM", "BUNDLE", "LOOTBOX", "OPTIONBOX", "MEDIA", "SUBSCRIPTION"}
    keys = {(g.kind, g.key) for p in game.products.values() for _, g in p.grant_plan()}
    assert {k for kind, k in keys if kind == "currency"} == {"gems", "gold"}
    assert {k for kind, k in keys if kind == "item"} == {
        "sword", "shield", "mystery_chest", "choice_box", "soundtrack", "vip_pass"}


def test_example_lookups():
    game = load_catalog(EXAMPLE).game("demo")
    gems = game.by_sku("gems_100")
    assert gems.name == "100 Gems" and gems.item_id == "gems_100"
    assert game.by_item_id("gems_100") is gems and game.by_sku("missing") is None
    assert game.by_store_id("google_play", "gems_100") is gems
    assert game.by_store_id("app_store", "com.demo.gems100") is gems
    assert game.by_store_id("stripe", "price_gems_100") is gems and game.by_store_id("stripe", "gems_100") is gems
    assert game.by_store_id("app_store", "gems_100") is None
    assert gems.store_ids["stripe"] == ("price_gems_100", "gems_100")
    starter = game.by_item_id("9a8b7c6d5e4f40312a1b2c3d4e5f6071")
    assert starter.sku == "starter_pack" and game.by_item_id("starter_pack") is None
    assert gems.grant_plan() == [(Component("gems_100", "gems_100", 1, (Grant("currency", "gems", 100),)),
                                  Grant("currency", "gems", 100))]


def test_example_subscription_bundles_and_unsupported():
    game = load_catalog(EXAMPLE).game("demo")
    vip = game.by_sku("vip_monthly")
    assert [(g.kind, g.key, g.amount) for _, g in vip.grant_plan()] == [("item", "vip_pass", 1), ("currency", "gems", 300)]
    mega = game.by_sku("mega_bundle")
    assert [(c.sku, c.quantity) for c in mega.components] == [("gems_100", 4), ("sword", 2), ("shield", 2), ("gold_1000", 1)]
    assert game.by_sku("season_pass").supported is False
    assert game.by_sku("season_pass").unsupported_reason == "item type SEASON cannot be fulfilled"
    broken = game.by_sku("broken_bundle")
    assert broken.supported is False
    assert broken.unsupported_reason == "bundle contains season_pass (type SEASON) which cannot be fulfilled"


def test_catalog_objects_are_frozen_and_hashable():
    catalog = load_catalog(EXAMPLE)
    again = load_catalog(EXAMPLE)
    assert hash(catalog) == hash(again) and catalog == again
    assert {catalog.game("demo").by_sku("mega_bundle")}
    with pytest.raises(AttributeError):
        catalog.game("demo").by_sku("gems_100").sku = "x"
    with pytest.raises(TypeError):
        catalog.game("demo").products["x"] = None
    assert "server_key" not in repr(catalog.game("demo"))


# ---------------------------------------------------------------- game settings
def test_defaults(tmp_path):
    game = load_text(tmp_path, GAME + GEMS).game("demo")
    assert game.allow_sandbox is False and game.negative_balance_policy == "fail"
    product = game.by_sku("gems_100")
    assert product.name == "gems_100" and product.item_id == "gems_100" and dict(product.store_ids) == {}


def test_server_key_from_environment(tmp_path, monkeypatch):
    text = GAME.replace('server_key = "kraty_sk_demo"', 'server_key_env = "KRATY_KEY_FOR_TEST"') + GEMS
    monkeypatch.setenv("KRATY_KEY_FOR_TEST", "sk_from_env")
    assert load_text(tmp_path, text).game("demo").server_key == "sk_from_env"
    monkeypatch.delenv("KRATY_KEY_FOR_TEST")
    error = problems(tmp_path, text)
    assert_problem(error, "games.demo.server_key_env", "environment variable KRATY_KEY_FOR_TEST is not set")


@pytest.mark.parametrize("keys", ['', 'server_key = "a"\nserver_key_env = "HOME"\n'])
def test_exactly_one_server_key_source(tmp_path, keys):
    text = GAME.replace('server_key = "kraty_sk_demo"\n', keys) + GEMS
    assert_problem(problems(tmp_path, text), "games.demo", "exactly one of server_key or server_key_env")


def test_error_message_format(tmp_path):
    error = problems(tmp_path, GAME + GEMS.replace("amount = 100", "amount = 0"))
    assert str(error) == f"{tmp_path / 'catalog.toml'}: games.demo.products.gems_100.grants[0].amount: must be a positive integer"
    assert error.problems == [("games.demo.products.gems_100.grants[0].amount", "must be a positive integer")]


# ---------------------------------------------------------------- rule violations
PRODUCT = "\n[games.demo.products.p]\n"


@pytest.mark.parametrize("body, path, fragment", [
    ('type = "COINS"\ngrants = [{ currency = "gems", amount = -5 }]', "p.grants[0].amount", "must be a positive integer"),
    ('type = "COINS"\ngrants = [{ currency = "gems", amount = "5" }]', "p.grants[0].amount", "must be a positive integer"),
    ('type = "COINS"\ngrants = [{ currency = "gems", amount = true }]', "p.grants[0].amount", "must be a positive integer"),
    ('type = "COINS"\ngrants = [{ currency = "gems", amount = 2147483648 }]', "p.grants[0].amount", "at most 2147483647"),
    ('type = "COINS"\ngrants = [{ currency = "gems", amount = 1.5 }]', "p.grants[0].amount", "must be a positive integer"),
    ('type = "COINS"\ngrants = [{ item = "sword", quantity = 1 }]', "p.grants[0]", "may only grant currencies"),
    ('type = "INGAMEITEM"\ngrants = [{ currency = "gems", amount = 1 }]', "p.grants[0]", "may only grant items"),
    ('type = "LOOTBOX"\ngrants = [{ currency = "gems", amount = 1 }]', "p.grants[0]", "may only grant items"),
    ('type = "INGAMEITEM"', "p.grants", "needs at least one grant"),
    ('type = "SUBSCRIPTION"\ngrants = []', "p.grants", "needs at least one grant"),
    ('type = "BUNDLE"', "p", "a BUNDLE needs contains and/or grants"),
    ('type = "INGAMEITEM"\ngrants = [{ item = "sword", quantity = 1 }]\ncontains = [{ sku = "gems_100" }]',
     "p.contains", "only BUNDLE products"),
    ('type = "GIFTCARD"', "p.type", "must be one of COINS, INGAMEITEM"),
    ('grants = [{ item = "sword", quantity = 1 }]', "p.type", "is required"),
    ('type = "MEDIA"\ngrants = [{ item = "x", quantity = 1 }]\ncolour = "red"', "p.colour", "unknown key"),
    ('type = "MEDIA"\ngrants = [{ item = "x", quantity = 1, note = "" }]', "p.grants[0].note", "unknown key"),
    ('type = "MEDIA"\ngrants = [{ item = "bad key!", quantity = 1 }]', "p.grants[0].item", "1-64 characters"),
    ('type = "COINS"\ngrants = [{ currency = "' + "g" * 65 + '", amount = 1 }]', "p.grants[0].currency", "1-64 characters"),
    ('type = "COINS"\ngrants = [{ currency = "gems" }]', "p.grants[0].amount", "is required"),
    ('type = "COINS"\ngrants = [{ currency = "gems", amount = 1, item = "sword" }]', "p.grants[0]", "exactly one of"),
    ('type = "COINS"\ngrants = [{}]', "p.grants[0]", "exactly one of"),
    ('type = "COINS"\ngrants = ["gems"]', "p.grants[0]", "must be a table"),
    ('type = "COINS"\ngrants = { currency = "gems", amount = 1 }', "p.grants", "must be an array of tables"),
    ('type = "COINS"\ngrants = [{ currency = "gems", amount = 1 }, { currency = "gems", amount = 2 }]',
     "p.grants[1]", "currency gems is already granted by grants[0]"),
    ('type = "BUNDLE"\ncontains = [{ sku = "gems_100" }, { sku = "gems_100", quantity = 2 }]',
     "p.contains[1]", "already listed in contains[0]"),
    ('type = "BUNDLE"\ncontains = [{ sku = "gems_100", quantity = 0 }]', "p.contains[0].quantity", "positive integer"),
    ('type = "COINS"\ngrants = [{ currency = "gems", amount = 1 }]\nstore_ids = { steam = "x" }',
     "p.store_ids.steam", "unknown store"),
    ('type = "COINS"\ngrants = [{ currency = "gems", amount = 1 }]\nstore_ids = { stripe = [] }',
     "p.store_ids.stripe", "non-empty"),
    ('type = "COINS"\ngrants = [{ currency = "gems", amount = 1 }]\nstore_ids = { stripe = [1] }',
     "p.store_ids.stripe", "non-empty string"),
    ('type = "COINS"\ngrants = [{ currency = "gems", amount = 1 }]\nname = ""', "p.name", "non-empty string"),
    ('type = "COINS"\ngrants = [{ currency = "gems", amount = 1 }]\nitem_id = "a b"', "p.item_id", "1-64 characters"),
])
def test_product_rule_violations(tmp_path, body, path, fragment):
    error = problems(tmp_path, GAME + GEMS + PRODUCT + body + "\n")
    assert_problem(error, f"games.demo.products.{path}", fragment)


@pytest.mark.parametrize("text, path, fragment", [
    ("", "games", "is required"),
    ("[games]\n", "games", "at least one game"),
    (GAME, "games.demo.products", "is required"),
    (GAME + "[games.demo.products]\n", "games.demo.products", "at least one product"),
    (GAME.replace("http://127.0.0.1:8100", "ftp://x") + GEMS, "games.demo.kraty_base_url", "http:// or https://"),
    (GAME + "allow_sandbox = 1\n" + GEMS, "games.demo.allow_sandbox", "true or false"),
    (GAME + 'negative_balance_policy = "maybe"\n' + GEMS, "games.demo.negative_balance_policy", "fail, allow_negative"),
    (GAME + "timeout = 3\n" + GEMS, "games.demo.timeout", "unknown key"),
    ("version = 1\n" + GAME + GEMS, "version", "unknown key"),
    (GAME.replace("[games.demo]", '[games."de mo"]'), 'games."de mo"', "invalid name"),
    (GAME + GEMS + '[games.demo.products."bad/sku"]\ntype = "CODE"\n', 'games.demo.products."bad/sku"', "invalid name"),
])
def test_game_rule_violations(tmp_path, text, path, fragment):
    assert_problem(problems(tmp_path, text), path, fragment)


def test_all_problems_are_reported_one_per_line(tmp_path):
    text = GAME + "allow_sandbox = 1\n" + GEMS.replace("amount = 100", "amount = 0") + PRODUCT + 'type = "NOPE"\n'
    text += '[games.demo.products.b]\ntype = "BUNDLE"\ncontains = [{ sku = "ghost" }]\n'
    error = problems(tmp_path, text)
    assert len(str(error).splitlines()) == len(error.problems) == 4
    assert_problem(error, "games.demo.allow_sandbox", "true or false")
    assert_problem(error, "games.demo.products.gems_100.grants[0].amount", "positive integer")
    assert_problem(error, "games.demo.products.p.type", "must be one of")
    assert_problem(error, "games.demo.products.b.contains[0].sku", "unknown product 'ghost'")


def test_dotted_keys_are_quoted_in_paths(tmp_path):
    text = GAME + '[games.demo.products."com.demo.gems"]\ntype = "COINS"\ngrants = [{ currency = "gems", amount = 0 }]\n'
    assert_problem(problems(tmp_path, text), 'games.demo.products."com.demo.gems".grants[0].amount', "positive integer")


def test_unsupported_types_may_omit_grants(tmp_path):
    text = GAME + GEMS + "".join(f'[games.demo.products.{t.lower()}]\ntype = "{t}"\n' for t in ("APP", "CODE", "SEASON", "EXTENSION"))
    game = load_text(tmp_path, text).game("demo")
    assert game.by_sku("code").supported is False
    assert game.by_sku("code").unsupported_reason == "item type CODE cannot be fulfilled"
    assert game.by_sku("code").grant_plan() == []


# ---------------------------------------------------------------- cross-product checks
def bundle(sku, *members, extra=""):
    contains = ", ".join(f'{{ sku = "{m}", quantity = {q} }}' for m, q in members)
    return f'[games.demo.products.{sku}]\ntype = "BUNDLE"\ncontains = [{contains}]\n{extra}'


def test_unknown_bundle_member(tmp_path):
    error = problems(tmp_path, GAME + GEMS + bundle("b", ("gems_100", 1), ("nothing", 1)))
    assert_problem(error, "games.demo.products.b.contains[1].sku", "unknown product 'nothing'")


def test_bundle_members_must_be_in_the_same_game(tmp_path):
    other = GAME.replace("demo", "other") + GEMS.replace("demo", "other").replace("gems_100", "gold")
    error = problems(tmp_path, GAME + GEMS + other + bundle("b", ("gold", 1)))
    assert_problem(error, "games.demo.products.b.contains[0].sku", "unknown product 'gold'")


@pytest.mark.parametrize("bundles, path, cycle", [
    ([("a", ("a", 1))], "a.contains[0].sku", "a -> a"),
    ([("a", ("b", 1)), ("b", ("a", 1))], "b.contains[0].sku", "a -> b -> a"),
    ([("a", ("gems_100", 1), ("b", 1)), ("b", ("c", 2)), ("c", ("a", 1))], "c.contains[0].sku", "a -> b -> c -> a"),
])
def test_bundle_cycles_are_rejected(tmp_path, bundles, path, cycle):
    text = GAME + GEMS + "".join(bundle(sku, *members) for sku, *members in bundles)
    error = problems(tmp_path, text)
    assert_problem(error, f"games.demo.products.{path}", f"bundle cycle: {cycle}")
    assert len(error.problems) == 1


def test_duplicate_item_ids(tmp_path):
    text = GAME + GEMS + '[games.demo.products.other]\ntype = "COINS"\nitem_id = "gems_100"\ngrants = [{ currency = "gems", amount = 1 }]\n'
    assert_problem(problems(tmp_path, text), "games.demo.products.other.item_id", "already the item_id of product gems_100")
    text = GAME + GEMS.replace('type = "COINS"', 'type = "COINS"\nitem_id = "x"') + GEMS.replace("gems_100", "x")
    assert_problem(problems(tmp_path, text), "games.demo.products.x", "(the default item_id: the SKU) is already the item_id of product gems_100")


def test_duplicate_store_ids(tmp_path):
    first = GEMS.replace('type = "COINS"', 'type = "COINS"\nstore_ids = { stripe = ["price_1", "shared"], app_store = "a" }')
    second = GEMS.replace("gems_100", "gems_200").replace('type = "COINS"', 'type = "COINS"\nstore_ids = { stripe = "shared", google_play = "a" }')
    error = problems(tmp_path, GAME + first + second)
    assert error.problems == [("games.demo.products.gems_200.store_ids.stripe", "'shared' is already the stripe id of product gems_100")]


def test_same_store_id_in_two_games_is_fine(tmp_path):
    product = GEMS.replace('type = "COINS"', 'type = "COINS"\nstore_ids = { google_play = "gems" }')
    catalog = load_text(tmp_path, GAME + product + GAME.replace("demo", "other") + product.replace("demo", "other"))
    assert catalog.game("demo").by_store_id("google_play", "gems") is not catalog.game("other").by_store_id("google_play", "gems")


# ---------------------------------------------------------------- flattening
NESTED = GAME + GEMS + """
[games.demo.products.sword]
type = "INGAMEITEM"
grants = [{ item = "sword", quantity = 1 }]
[games.demo.products.inner]
type = "BUNDLE"
grants = [{ item = "badge", quantity = 1 }]
contains = [{ sku = "gems_100", quantity = 2 }, { sku = "sword", quantity = 1 }]
[games.demo.products.middle]
type = "BUNDLE"
contains = [{ sku = "inner", quantity = 3 }, { sku = "sword", quantity = 1 }]
[games.demo.products.outer]
type = "BUNDLE"
grants = [{ currency = "gold", amount = 5 }, { item = "crown", quantity = 1 }]
contains = [{ sku = "middle", quantity = 2 }, { sku = "gems_100", quantity = 1 }]
"""


def test_grant_plan_flattens_nested_bundles_and_multiplies_quantities(tmp_path):
    game = load_text(tmp_path, NESTED).game("demo")
    plan = [(c.sku, c.quantity, g.kind, g.key, g.amount) for c, g in game.by_sku("outer").grant_plan()]
    assert plan == [
        ("outer", 1, "currency", "gold", 5),     # the bundle's own grants first
        ("outer", 1, "item", "crown", 1),
        ("inner", 6, "item", "badge", 1),        # 2 middle x 3 inner
        ("gems_100", 13, "currency", "gems", 100),  # 2 x 3 x 2 via inner, + 1 direct (merged, first position)
        ("sword", 8, "item", "sword", 1),        # 2 x 3 x 1 via inner, + 2 x 1 via middle
    ]
    middle = game.by_sku("middle")
    assert [(c.sku, c.quantity) for c in middle.components] == [("inner", 3), ("gems_100", 6), ("sword", 4)]
    assert middle.contains == (("inner", 3), ("sword", 1)) and middle.grants == ()


def test_grant_plan_is_deterministic_across_loads(tmp_path):
    first = load_text(tmp_path, NESTED).game("demo").by_sku("outer").grant_plan()
    second = load_catalog(write(tmp_path, NESTED, "again.toml")).game("demo").by_sku("outer").grant_plan()
    assert first == second


def test_multiplied_amount_overflow_is_rejected(tmp_path):
    text = GAME + GEMS.replace("amount = 100", "amount = 2000000000") + bundle("b", ("gems_100", 2))
    assert_problem(problems(tmp_path, text), "games.demo.products.b", "more than 2147483647")


def test_unsupported_member_propagates_through_nesting(tmp_path):
    text = GAME + GEMS + '[games.demo.products.code_item]\ntype = "CODE"\n'
    text += bundle("inner", ("gems_100", 1), ("code_item", 1)) + bundle("outer", ("gems_100", 1), ("inner", 2))
    game = load_text(tmp_path, text).game("demo")
    for sku in ("inner", "outer"):
        assert game.by_sku(sku).supported is False
        assert game.by_sku(sku).unsupported_reason == "bundle contains code_item (type CODE) which cannot be fulfilled"
    assert game.by_sku("gems_100").supported is True


# ---------------------------------------------------------------- unreadable files
def test_bad_toml_names_file_and_line(tmp_path):
    error = problems(tmp_path, GAME + "allow_sandbox = = true\n" + GEMS)
    assert str(error).startswith(f"{tmp_path / 'catalog.toml'}: line 5, column 17: invalid TOML: ")


def test_bad_toml_at_end_of_file(tmp_path):
    error = problems(tmp_path, GAME + GEMS + "[games.demo.products.x")
    assert "catalog.toml: line 9 (end of file): invalid TOML: " in str(error)


def test_missing_file(tmp_path):
    with pytest.raises(CatalogError, match="nothing.toml: cannot read file"):
        load_catalog(tmp_path / "nothing.toml")
