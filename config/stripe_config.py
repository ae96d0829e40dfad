"""A game's Stripe settings: the ``[games.<namespace>.stripe]`` table of ``catalog.toml``.

A game without the table takes no Stripe events. ``StripeSchema`` checks the table (problems come out
as ``games.<ns>.stripe.<key>: problem`` lines of the catalog's ``CatalogError``) and loads it as an
immutable ``StripeConfig``. Secrets may be written inline (local trials) or, better, named by an
environment variable (``*_env``) that must be set when the catalog loads. Problems never repeat a
secret's value.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from marshmallow import ValidationError, post_load, validates_schema

from config.toml_schema import Checked, Choice, FromEnv, StrictSchema, StringList

__all__ = ["DISPUTE_POLICIES", "INQUIRY_POLICIES", "PARTIAL_REFUND_POLICIES", "REFUND_ON", "StripeConfig",
           "StripeSchema"]

PARTIAL_REFUND_POLICIES = ("flag", "proportional")
DISPUTE_POLICIES = ("revoke_on_open", "revoke_when_lost")
INQUIRY_POLICIES = ("flag", "revoke")  # a card inquiry (dispute status warning_*): no funds were withdrawn
REFUND_ON = ("succeeded", "pending")   # the refund status that takes back (failed / canceled give back)
METADATA_KEY_MAX = 40  # Stripe's limit on a metadata key

WEBHOOK_SECRET_RE = re.compile(r"whsec_\S+\Z")
WEBHOOK_SECRET_RULE = "must be a webhook signing secret starting with whsec_"
WEBHOOK_SECRETS_RULE = "must be a non-empty list of webhook signing secrets (whsec_...)"
API_KEY_RE = re.compile(r"[sr]k_(?:test|live)_\S+\Z")
API_KEY_RULE = "must be a secret or restricted API key starting with sk_test_, sk_live_, rk_test_ or rk_live_"
TEST_API_KEY_RE = re.compile(r"[sr]k_test_\S+\Z")
TEST_API_KEY_RULE = "must be a test-mode secret or restricted API key starting with sk_test_ or rk_test_"
ACCOUNT_RE = re.compile(r"acct_[A-Za-z0-9]{1,35}\Z")
ACCOUNTS_RULE = "must be a list of Stripe connected account ids (acct_...)"
METADATA_KEY_RULE = f"must be 1-{METADATA_KEY_MAX} characters, not blank, without [ or ] (a Stripe metadata key)"


@dataclass(frozen=True)
class StripeConfig:
    """How one game takes Stripe events. Hashable; ``repr`` hides the secrets."""

    webhook_secrets: tuple[str, ...] = field(repr=False)  # every live whsec_ secret: test and live endpoints, rotation
    api_key: str = field(repr=False)  # sk_/rk_, test or live: fetches Checkout Session line items
    test_api_key: str | None = field(repr=False)  # for test-mode events when api_key is a live key
    player_metadata_key: str  # session metadata key naming the player when client_reference_id is empty
    partial_refunds: str  # "flag" | "proportional"
    disputes: str  # "revoke_on_open" | "revoke_when_lost"
    inquiries: str = "flag"  # "flag" | "revoke"
    refund_on: str = "succeeded"  # "succeeded" | "pending"
    # Stripe Connect: the connected accounts whose events (top-level ``account``) this game accepts; the
    # platform's own events are always accepted. Others are recorded and refused.
    connected_accounts: tuple[str, ...] = ()

    def key_for(self, livemode: bool) -> str:
        """The API key for an event's objects: test-mode events use ``test_api_key`` when given."""
        if not livemode and self.test_api_key is not None:
            return self.test_api_key
        return self.api_key


# ---------------------------------------------------------------- parsing one value (inline or from the environment)
def _api_key(pattern: re.Pattern, rule: str):
    def parse(raw: str) -> str:
        if not pattern.match(raw.strip()):
            raise ValueError(rule)
        return raw.strip()

    return parse


def secrets_from_env(raw: str) -> tuple[str, ...]:
    """A comma-separated list of ``whsec_`` secrets; blanks around and between items are dropped."""
    secrets = [part.strip() for part in raw.split(",") if part.strip()]
    if not secrets:
        raise ValueError("must hold a comma-separated list of webhook signing secrets (whsec_...)")
    for number, secret in enumerate(secrets, 1):
        if not WEBHOOK_SECRET_RE.match(secret):
            raise ValueError(f"must hold webhook signing secrets starting with whsec_, separated by commas "
                             f"(item {number} is not one)")
    return tuple(dict.fromkeys(secrets))


def WebhookSecrets(**kwargs) -> StringList:  # noqa: N802 - a field, named like the other fields
    """A non-empty TOML list of ``whsec_`` secrets -> a tuple (order kept, duplicates dropped)."""
    return StringList(lambda secret: WEBHOOK_SECRET_RE.match(secret) is not None, WEBHOOK_SECRETS_RULE,
                      WEBHOOK_SECRET_RULE, allow_empty=False, unique=True, **kwargs)


def _key_field(pattern: re.Pattern, rule: str) -> Checked:
    return Checked(lambda v: isinstance(v, str) and pattern.match(v) is not None, rule)


def _is_metadata_key(value) -> bool:
    return (isinstance(value, str) and 1 <= len(value) <= METADATA_KEY_MAX and value.strip() != ""
            and "[" not in value and "]" not in value)


# ---------------------------------------------------------------- the table
class StripeSchema(StrictSchema):
    """``[games.<ns>.stripe]`` -> ``StripeConfig`` (environment variables resolved)."""

    webhook_secrets = WebhookSecrets()
    webhook_secrets_env = FromEnv(secrets_from_env)
    api_key = _key_field(API_KEY_RE, API_KEY_RULE)
    api_key_env = FromEnv(_api_key(API_KEY_RE, API_KEY_RULE))
    test_api_key = _key_field(TEST_API_KEY_RE, TEST_API_KEY_RULE)
    test_api_key_env = FromEnv(_api_key(TEST_API_KEY_RE, TEST_API_KEY_RULE))
    player_metadata_key = Checked(_is_metadata_key, METADATA_KEY_RULE, load_default="player_id")
    partial_refunds = Choice(PARTIAL_REFUND_POLICIES, load_default="flag")
    disputes = Choice(DISPUTE_POLICIES, load_default="revoke_on_open")
    inquiries = Choice(INQUIRY_POLICIES, load_default="flag")
    refund_on = Choice(REFUND_ON, load_default="succeeded")
    connected_accounts = StringList(lambda value: ACCOUNT_RE.match(value) is not None, ACCOUNTS_RULE,
                                    "must be a connected account id acct_...", unique=True, load_default=())

    @validates_schema(skip_on_field_errors=False, pass_original=True)
    def _one_source_each(self, data, original, **kwargs):
        if not isinstance(original, dict):
            return
        problems = []
        for name in ("webhook_secrets", "api_key"):
            if (name in original) == (f"{name}_env" in original):
                problems.append(f"exactly one of {name} or {name}_env is required")
        if "test_api_key" in original and "test_api_key_env" in original:
            problems.append("at most one of test_api_key or test_api_key_env may be given")
        if problems:
            raise ValidationError(problems)

    @post_load
    def _build(self, data, **kwargs) -> StripeConfig:
        def either(name):  # the *_env fields were loaded as the variable's value
            return data.get(name, data.get(f"{name}_env"))

        return StripeConfig(
            webhook_secrets=either("webhook_secrets"), api_key=either("api_key"),
            test_api_key=either("test_api_key"), player_metadata_key=data["player_metadata_key"],
            partial_refunds=data["partial_refunds"], disputes=data["disputes"],
            inquiries=data["inquiries"], refund_on=data["refund_on"],
            connected_accounts=tuple(data["connected_accounts"]),
        )
