"""Prices in the catalog (per currency, per store), trial_sku, [price_policy] and stripe.connected_accounts."""
from decimal import Decimal

import pytest

from config.catalog import load_catalog
from config.prices import DEFAULT_POLICY, PricePolicy
from tests.test_catalog import EXAMPLE, GAME, GEMS, assert_problem, load_text, problems

VIP = """
[games.demo.products.vip]
type = "SUBSCRIPTION"
grants = [{ item = "vip_pass", quantity = 1 }]
"""


def test_example_prices_and_default_policy():
    game = load_catalog(EXAMPLE).game("demo")
    gems, starter = game.by_sku("gems_100"), game.by_sku("starter_pack")
    assert gems.price("stripe", "USD") == Decimal("0.99") and gems.price("stripe", "JPY") == 160
    assert gems.price("stripe", "GBP") is None and game.by_sku("gold_1000").price("stripe", "USD") is None
    assert starter.price("stripe", "USD") == Decimal("2.99") and starter.price("app_store", "USD") == Decimal("3.99")
    assert game.price_policy == DEFAULT_POLICY == PricePolicy("enforce", "flag", "flag", "flag", "refuse", "honour")
    assert game.by_sku("vip_monthly").trial_sku is None


def test_prices_policy_and_trial_sku_given(tmp_path):
    text = GAME + GEMS + 'prices = { usd = "1", eur = 2, kwd = "0.125" }\n' + VIP + 'trial_sku = "gems_100"\n' + """
[games.demo.price_policy]
payment_intent = "flag"
checkout = "enforce"
invoice = "off"
app_store = "enforce"
unpriced_payment_intents = "allow"
discounts = "shortfall"
"""
    game = load_text(tmp_path, text).game("demo")
    assert dict(game.by_sku("gems_100").prices[""]) == {"USD": 1, "EUR": 2, "KWD": Decimal("0.125")}
    assert game.by_sku("vip").trial_sku == "gems_100"
    assert game.price_policy == PricePolicy("flag", "enforce", "off", "enforce", "allow", "shortfall")


@pytest.mark.parametrize("line, path, fragment", [
    ('prices = { USD = "4.999" }', "prices.USD", "USD has 2 decimals"),
    ("prices = { JPY = \"1.5\" }", "prices.JPY", "JPY has 0 decimals"),
    ('prices = { USD = "-1" }', "prices.USD", "from 0 up to"),
    ("prices = { USD = 4.99 }", "prices.USD", 'a decimal string ("4.99") or an integer'),
    ('prices = { DOLLARS = "1" }', "prices.DOLLARS", "not an ISO 4217"),
    ("prices = {}", "prices", "non-empty table"),
    ('store_prices = { steam = { USD = "1" } }', "store_prices.steam", "unknown store"),
    ('trial_sku = "gems_100"', "trial_sku", "only SUBSCRIPTION"),
])
def test_bad_prices(tmp_path, line, path, fragment):
    assert_problem(problems(tmp_path, GAME + GEMS + line + "\n"), f"games.demo.products.gems_100.{path}", fragment)


def test_unknown_trial_sku_and_bad_policy(tmp_path):
    error = problems(tmp_path, GAME + GEMS + VIP + 'trial_sku = "nope"\n[games.demo.price_policy]\ncheckout = "lax"\n')
    assert_problem(error, "games.demo.products.vip.trial_sku", "unknown product 'nope'")
    assert_problem(error, "games.demo.price_policy.checkout", "must be one of enforce, flag, off")


def test_connected_accounts(tmp_path):
    stripe = '\n[games.demo.stripe]\nwebhook_secrets = ["whsec_one"]\napi_key = "sk_test_demo"\n'
    game = load_text(tmp_path, GAME + GEMS + stripe + 'connected_accounts = ["acct_1A", "acct_1B"]\n').game("demo")
    assert game.stripe.connected_accounts == ("acct_1A", "acct_1B")
    assert load_text(tmp_path, GAME + GEMS + stripe).game("demo").stripe.connected_accounts == ()
    error = problems(tmp_path, GAME + GEMS + stripe + 'connected_accounts = ["cus_1"]\n')
    assert_problem(error, "games.demo.stripe.connected_accounts[0]", "acct_")
