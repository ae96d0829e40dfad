"""Marshmallow schemas for ``catalog.toml``.

The schemas check the shape of every node and the per-product rules; cross-references between
products (bundle members, cycles, duplicate item/store ids) are checked in ``config.catalog``.
Problems are reported as ``(key path, message)`` pairs, e.g.
``("games.demo.products.gems_100.grants[0].amount", "must be a positive integer")``. The generic
pieces (file reading, fields, ``ConfigFileError``) live in ``config.toml_schema`` and are re-exported
here; a game's ``[stripe]`` table is ``config.stripe_config.StripeSchema``.
"""

from __future__ import annotations

from marshmallow import ValidationError, fields, post_load, validates_schema
from standardwebhooks.webhooks import Webhook

from config.prices import PricePolicySchema, Prices, StorePrices
from config.stripe_config import StripeSchema, WebhookSecrets, secrets_from_env
from config.toml_schema import (
    ENV_NAME_RE,
    INT32_MAX,
    NAME_RE,
    NAME_RULE,
    Checked,
    Choice,
    ConfigFileError,
    Flag,
    FromEnv,
    HttpUrl,
    Name,
    PositiveInt,
    StrictSchema,
    Table,
    TableList,
    Text,
    Value,
    flatten_errors,
    join_path,
    read_toml,
)

__all__ = [
    "ENV_NAME_RE", "INT32_MAX", "NAME_RE", "NAME_RULE", "STORES", "SUPPORTED_TYPES", "UNSUPPORTED_TYPES",
    "CatalogSchema", "Checked", "ConfigFileError", "GameSchema", "ProductSchema", "StrictSchema", "Table",
    "TableList", "flatten_errors", "join_path", "read_toml",
]

CURRENCY_TYPES = frozenset({"COINS"})
ITEM_TYPES = frozenset({"INGAMEITEM", "LOOTBOX", "OPTIONBOX", "MEDIA"})
SUPPORTED_TYPES = ("COINS", "INGAMEITEM", "BUNDLE", "LOOTBOX", "OPTIONBOX", "MEDIA", "SUBSCRIPTION")
UNSUPPORTED_TYPES = ("APP", "CODE", "SEASON", "EXTENSION")
STORES = ("google_play", "app_store", "stripe")
NEGATIVE_BALANCE_POLICIES = ("fail", "allow_negative")


# ---------------------------------------------------------------- catalog schemas
class StoreIds(Value):
    """``{store: id | [ids]}`` -> ``{store: (ids, ...)}`` (order kept, duplicates dropped)."""

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, dict):
            raise ValidationError("must be a table of store = id or [ids]")
        errors, out = {}, {}
        for store, ids in value.items():
            ids = [ids] if isinstance(ids, str) else ids
            if store not in STORES:
                errors[store] = [f"unknown store (known: {', '.join(STORES)})"]
            elif not isinstance(ids, list) or not ids or not all(isinstance(i, str) and i.strip() for i in ids):
                errors[store] = ["must be a non-empty string or a non-empty list of them"]
            else:
                out[store] = tuple(dict.fromkeys(ids))
        if errors:
            raise ValidationError(errors)
        return out


def _grant_kind(grant) -> str | None:
    """"currency" or "item" from the keys a raw grant table uses; None when it is not clear."""
    if not isinstance(grant, dict):
        return None
    is_currency = "currency" in grant or "amount" in grant
    is_item = "item" in grant or "quantity" in grant
    return None if is_currency == is_item else "currency" if is_currency else "item"


class GrantSchema(StrictSchema):
    """``{currency, amount}`` or ``{item, quantity}`` -> ``{"kind", "key", "amount"}``."""

    currency = Name()
    amount = PositiveInt()
    item = Name()
    quantity = PositiveInt()

    @validates_schema(skip_on_field_errors=False, pass_original=True)
    def _one_kind(self, data, original, **kwargs):
        if not isinstance(original, dict):
            return
        kind = _grant_kind(original)
        if kind is None:
            raise ValidationError("must be exactly one of {currency, amount} or {item, quantity}")
        needed = ("currency", "amount") if kind == "currency" else ("item", "quantity")
        missing = {key: ["is required"] for key in needed if key not in original}
        if missing:
            raise ValidationError(missing)

    @post_load
    def _normalise(self, data, **kwargs):
        if "currency" in data:
            return {"kind": "currency", "key": data["currency"], "amount": data["amount"]}
        return {"kind": "item", "key": data["item"], "amount": data["quantity"]}


class ContentSchema(StrictSchema):
    sku = Name(required=True)
    quantity = PositiveInt(load_default=1)


class ProductSchema(StrictSchema):
    type = Choice(SUPPORTED_TYPES + UNSUPPORTED_TYPES, required=True)
    name = Text()
    item_id = Name()
    store_ids = StoreIds()
    grants = TableList(GrantSchema)
    contains = TableList(ContentSchema)
    prices = Prices()  # what ONE unit costs per currency (config/prices.py)
    store_prices = StorePrices()  # per store, where it differs
    trial_sku = Name()  # SUBSCRIPTION: what a trial start (nothing charged) grants; default: nothing

    @validates_schema(skip_on_field_errors=False, pass_original=True)
    def _type_rules(self, data, original, **kwargs):
        kind = data.get("type")
        if not isinstance(original, dict) or kind is None:
            return
        errors: dict = {}
        if kind == "BUNDLE":
            if not original.get("contains") and not original.get("grants"):
                errors["_schema"] = ["a BUNDLE needs contains and/or grants"]
        elif "contains" in original:
            errors["contains"] = ["only BUNDLE products may contain other products"]
        elif kind in SUPPORTED_TYPES and not original.get("grants"):
            errors["grants"] = [f"a {kind} product needs at least one grant"]
        if "trial_sku" in original and kind != "SUBSCRIPTION":
            errors["trial_sku"] = ["only SUBSCRIPTION products have trial contents"]
        seen: dict[tuple[str, str], int] = {}
        raw_grants = original.get("grants")
        for index, grant in enumerate(raw_grants if isinstance(raw_grants, list) else ()):
            kind_of = _grant_kind(grant)
            if kind_of is None:
                continue  # malformed: reported by GrantSchema
            problem, key = None, grant.get(kind_of)
            if kind in CURRENCY_TYPES and kind_of != "currency":
                problem = f"a {kind} product may only grant currencies ({{currency, amount}})"
            elif kind in ITEM_TYPES and kind_of != "item":
                problem = f"a {kind} product may only grant items ({{item, quantity}})"
            elif isinstance(key, str) and (kind_of, key) in seen:
                problem = f"{kind_of} {key} is already granted by grants[{seen[kind_of, key]}]"
            if isinstance(key, str):
                seen.setdefault((kind_of, key), index)
            if problem:
                errors.setdefault("grants", {})[index] = [problem]
        seen_skus: dict[str, int] = {}
        for index, content in enumerate(data.get("contains", ())):
            if content["sku"] in seen_skus:
                errors.setdefault("contains", {})[index] = [
                    f"{content['sku']} is already listed in contains[{seen_skus[content['sku']]}]"
                ]
            seen_skus.setdefault(content["sku"], index)
        if errors:
            raise ValidationError(errors)


class GameSchema(StrictSchema):
    kraty_base_url = HttpUrl(required=True)
    server_key_env = FromEnv()
    server_key = Text()
    allow_sandbox = Flag(load_default=False)
    negative_balance_policy = Choice(NEGATIVE_BALANCE_POLICIES, load_default="fail")
    stripe = fields.Nested(StripeSchema)  # optional: a game without it takes no Stripe events
    price_policy = fields.Nested(PricePolicySchema)  # optional: config.prices.DEFAULT_POLICY
    kraty_game_id = Text()  # the game's id in Kraty's webhooks (gameId); default: the namespace
    kraty_webhook_secrets = WebhookSecrets()  # Kraty's Standard Webhooks secrets (rotation: every live one)
    kraty_webhook_secrets_env = FromEnv(secrets_from_env)
    products = Table(ProductSchema, min_entries=1, min_message="must define at least one product", required=True)

    @validates_schema(skip_on_field_errors=False, pass_original=True)
    def _one_key(self, data, original, **kwargs):
        if isinstance(original, dict) and ("server_key" in original) == ("server_key_env" in original):
            raise ValidationError("exactly one of server_key or server_key_env is required")
        if isinstance(original, dict) and "kraty_webhook_secrets" in original and "kraty_webhook_secrets_env" in original:
            raise ValidationError("at most one of kraty_webhook_secrets or kraty_webhook_secrets_env may be given")
        for secret in data.get("kraty_webhook_secrets") or data.get("kraty_webhook_secrets_env") or ():
            try:
                Webhook(secret)
            except Exception:  # noqa: BLE001 - the library raises plain errors for bad base64
                raise ValidationError({"kraty_webhook_secrets": ["each secret must be whsec_ followed by base64 "
                                                                 "(Standard Webhooks)"]}) from None

    @post_load
    def _resolve_key(self, data, **kwargs):
        if "server_key_env" in data:  # FromEnv loaded it as the variable's value
            data["server_key"] = data.pop("server_key_env")
        if "kraty_webhook_secrets_env" in data:
            data["kraty_webhook_secrets"] = data.pop("kraty_webhook_secrets_env")
        return data


class CatalogSchema(StrictSchema):
    games = Table(GameSchema, min_entries=1, min_message="must define at least one game", required=True)
