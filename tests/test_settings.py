"""config.settings: the Stripe settings."""
import pytest

from config.settings import SettingsError, load_settings


def test_stripe_defaults():
    settings = load_settings({})
    assert settings.stripe_api_base == "https://api.stripe.com" and settings.stripe_tolerance_seconds == 300


def test_stripe_settings_from_environment():
    settings = load_settings({"KB_STRIPE_API_BASE": "http://127.0.0.1:8200/", "KB_STRIPE_TOLERANCE_SECONDS": "60"})
    assert settings.stripe_api_base == "http://127.0.0.1:8200" and settings.stripe_tolerance_seconds == 60
    assert load_settings({}, stripe_api_base="http://localhost:9/").stripe_api_base == "http://localhost:9"


@pytest.mark.parametrize("name, value, problem", [
    ("KB_STRIPE_API_BASE", "api.stripe.com", "expected an http:// or https:// URL"),
    ("KB_STRIPE_API_BASE", "ftp://api.stripe.com", "expected an http:// or https:// URL"),
    ("KB_STRIPE_API_BASE", "  ", "must not be empty"),
    ("KB_STRIPE_TOLERANCE_SECONDS", "0", "greater than 0"),
    ("KB_STRIPE_TOLERANCE_SECONDS", "5m", "expected a number"),
    ("KB_STRIPE_TOLERANCE_SECONDS", "2.5", "expected a number"),
])
def test_bad_stripe_settings_name_the_setting(name, value, problem):
    with pytest.raises(SettingsError) as info:
        load_settings({name: value})
    assert str(info.value).startswith(f"{name}: ") and problem in str(info.value)


def test_max_grant_total_is_at_most_two_to_the_53():
    assert load_settings({}).max_grant_total == 10**15
    assert load_settings({"KB_MAX_GRANT_TOTAL": str(2**53)}).max_grant_total == 2**53
    with pytest.raises(SettingsError, match="KB_MAX_GRANT_TOTAL: at most 9007199254740992"):
        load_settings({"KB_MAX_GRANT_TOTAL": str(2**53 + 1)})
