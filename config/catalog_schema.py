"""Marshmallow schemas for ``catalog.toml`` and the TOML-file helpers shared with ``storefronts.py``.

The schemas check the shape of every node and the per-product rules; cross-references between
products (bundle members, cycles, duplicate item/store ids) are checked in ``config.catalog``.
Problems are reported as ``(key path, message)`` pairs, e.g.
``("games.demo.products.gems_100.grants[0].amount", "must be a positive integer")``.
"""

from __future__ import annotations

import json
import os
import re
import tomllib
from collections.abc import Iterable

from marshmallow import Schema, ValidationError, fields, post_load, validate, validates, validates_schema

NAME_RE = re.compile(r"[A-Za-z0-9_.:-]{1,64}\Z")
NAME_RULE = "must be 1-64 characters of A-Z a-z 0-9 _ . : -"
ENV_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
INT32_MAX = 2_147_483_647

CURRENCY_TYPES = frozenset({"COINS"})
ITEM_TYPES = frozenset({"INGAMEITEM", "LOOTBOX", "OPTIONBOX", "MEDIA"})
SUPPORTED_TYPES = ("COINS", "INGAMEITEM", "BUNDLE", "LOOTBOX", "OPTIONBOX", "MEDIA", "SUBSCRIPTION")
UNSUPPORTED_TYPES = ("APP", "CODE", "SEASON", "EXTENSION")
STORES = ("google_play", "app_store", "stripe")
NEGATIVE_BALANCE_POLICIES = ("fail", "allow_negative")


class ConfigFileError(Exception):
    """A config file is unreadable or invalid; ``problems`` lists ``(key path, message)`` pairs."""

    def __init__(self, source: str, problems: Iterable[tuple[str, str]]):
        self.source = source
        self.problems = list(dict.fromkeys(problems))
        super().__init__("\n".join(f"{source}: {p}: {m}" if p else f"{source}: {m}" for p, m in self.problems))


def read_toml(path, error_cls: type[ConfigFileError]) -> dict:
    """Parse a TOML file; unreadable files and syntax errors raise ``error_cls`` naming file and line."""
    source = os.fspath(path)
    try:
        with open(source, "rb") as fh:
            text = fh.read().decode("utf-8")
        return tomllib.loads(text)
    except OSError as exc:
        raise error_cls(source, [("", f"cannot read file: {exc.strerror or exc}")]) from None
    except UnicodeDecodeError as exc:
        raise error_cls(source, [("", f"not UTF-8 text: {exc.reason} at byte {exc.start}")]) from None
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        where = re.search(r"\s*\(at line (\d+), column (\d+)\)", message)
        if where:
            line = f"line {where.group(1)}, column {where.group(2)}"
        else:  # "(at end of document)"
            where = re.search(r"\s*\(at end of document\)", message)
            line = f"line {text.count(chr(10)) + 1} (end of file)"
        message = message[: where.start()] if where else message
        raise error_cls(source, [(line, f"invalid TOML: {message}")]) from None


def join_path(*parts) -> str:
    """``("games", "demo", "grants", 0)`` -> ``games.demo.grants[0]``; keys that are not bare TOML keys are quoted."""
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            key = part if re.fullmatch(r"[A-Za-z0-9_-]+", part) else json.dumps(part)
            out = f"{out}.{key}" if out else key
    return out


def flatten_errors(messages, *prefix) -> list[tuple[str, str]]:
    """Turn marshmallow's nested error dict into ``(key path, message)`` pairs."""
    if isinstance(messages, dict):
        out = []
        for key, sub in messages.items():
            out += flatten_errors(sub, *prefix) if key == "_schema" else flatten_errors(sub, *prefix, key)
        return out
    if isinstance(messages, (list, tuple)):
        return [pair for message in messages for pair in flatten_errors(message, *prefix)]
    return [(join_path(*prefix), str(messages))]


# ---------------------------------------------------------------- fields with our wording
class Value(fields.Field):
    default_error_messages = {"required": "is required", "null": "must not be null"}


class Checked(Value):
    """A value that must pass ``check``; otherwise ``message``."""

    def __init__(self, check, message: str, **kwargs):
        super().__init__(**kwargs)
        self.check, self.message = check, message

    def _deserialize(self, value, attr, data, **kwargs):
        if not self.check(value):
            raise ValidationError(self.message)
        return value


def Name(**kwargs) -> Checked:  # noqa: N802 - reads like a field class
    return Checked(lambda v: isinstance(v, str) and NAME_RE.match(v) is not None, NAME_RULE, **kwargs)


def Text(**kwargs) -> Checked:  # noqa: N802
    return Checked(lambda v: isinstance(v, str) and v.strip() != "", "must be a non-empty string", **kwargs)


def Flag(**kwargs) -> Checked:  # noqa: N802
    return Checked(lambda v: isinstance(v, bool), "must be true or false", **kwargs)


class PositiveInt(Value):
    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValidationError("must be a positive integer")
        if value > INT32_MAX:
            raise ValidationError(f"must be at most {INT32_MAX}")
        return value


def Choice(choices, **kwargs) -> Checked:  # noqa: N802
    return Checked(lambda v: v in choices, f"must be one of {', '.join(choices)}", **kwargs)


class HttpUrl(Value):
    _check = validate.URL(schemes={"http", "https"}, require_tld=False)

    def _deserialize(self, value, attr, data, **kwargs):
        try:
            return self._check(value).rstrip("/")
        except (ValidationError, TypeError):
            raise ValidationError("must be an http:// or https:// URL") from None


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


class Table(Value):
    """A TOML table whose keys are names and whose values are loaded with ``schema``."""

    def __init__(self, schema: type[Schema], min_entries: int = 0, min_message: str = "", **kwargs):
        super().__init__(**kwargs)
        self.schema, self.min_entries, self.min_message = schema, min_entries, min_message

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, dict):
            raise ValidationError("must be a table")
        if len(value) < self.min_entries:
            raise ValidationError(self.min_message or f"needs at least {self.min_entries} entries")
        errors, out = {}, {}
        for key, sub in value.items():
            if not NAME_RE.match(key):
                errors[key] = [f"invalid name: {NAME_RULE}"]
                continue
            try:
                out[key] = self.schema().load(sub)
            except ValidationError as exc:
                errors[key] = exc.messages
        if errors:
            raise ValidationError(errors)
        return out


class TableList(Value):
    """An array of tables, each loaded with ``schema``."""

    def __init__(self, schema: type[Schema], **kwargs):
        super().__init__(**kwargs)
        self.schema = schema

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, list):
            raise ValidationError("must be an array of tables")
        errors, out = {}, []
        for index, sub in enumerate(value):
            try:
                out.append(self.schema().load(sub))
            except ValidationError as exc:
                errors[index] = exc.messages
        if errors:
            raise ValidationError(errors)
        return out


class StrictSchema(Schema):
    error_messages = {"unknown": "unknown key", "type": "must be a table"}


# ---------------------------------------------------------------- catalog schemas
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
    server_key_env = Text()
    server_key = Text()
    allow_sandbox = Flag(load_default=False)
    negative_balance_policy = Choice(NEGATIVE_BALANCE_POLICIES, load_default="fail")
    products = Table(ProductSchema, min_entries=1, min_message="must define at least one product", required=True)

    @validates("server_key_env")
    def _env_is_set(self, value, data_key, **kwargs):
        if not ENV_NAME_RE.match(value):
            raise ValidationError("must be an environment variable name")
        if not os.environ.get(value):
            raise ValidationError(f"environment variable {value} is not set")

    @validates_schema(skip_on_field_errors=False, pass_original=True)
    def _one_key(self, data, original, **kwargs):
        if isinstance(original, dict) and ("server_key" in original) == ("server_key_env" in original):
            raise ValidationError("exactly one of server_key or server_key_env is required")

    @post_load
    def _resolve_key(self, data, **kwargs):
        if "server_key_env" in data:
            data["server_key"] = os.environ[data.pop("server_key_env")]
        return data


class CatalogSchema(StrictSchema):
    games = Table(GameSchema, min_entries=1, min_message="must define at least one game", required=True)
