"""The pieces every TOML config file's schema is built from: reading a file, key paths, and marshmallow
fields and schemas that word their problems our way.

Used by ``config.catalog_schema``, ``config.stripe_config`` and ``config.storefronts``. Problems are
``(key path, message)`` pairs, e.g. ``("games.demo.products.gems_100.grants[0].amount", "must be a
positive integer")``; ``ConfigFileError`` prints one ``file: key.path: problem`` line per pair.
"""

from __future__ import annotations

import json
import os
import re
import tomllib
from collections.abc import Callable, Iterable
from typing import ClassVar

from marshmallow import Schema, ValidationError, fields, validate

NAME_RE = re.compile(r"[A-Za-z0-9_.:-]{1,64}\Z")
NAME_RULE = "must be 1-64 characters of A-Z a-z 0-9 _ . : -"
ENV_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
INT32_MAX = 2_147_483_647


class ConfigFileError(Exception):
    """A config file is unreadable or invalid; ``problems`` lists ``(key path, message)`` pairs."""

    def __init__(self, source: str, problems: Iterable[tuple[str, str]]):
        self.source = source
        self.problems = list(dict.fromkeys(problems))
        super().__init__("\n".join(f"{source}: {p}: {m}" if p else f"{source}: {m}" for p, m in self.problems))


def read_bytes(path: str) -> tuple[bytes | None, str | None]:
    """A file a config names, whole: (bytes, None) or (None, "cannot read <path>: <why>")."""
    try:
        with open(path, "rb") as fh:
            return fh.read(), None
    except OSError as exc:
        return None, f"cannot read {path}: {exc.strerror or exc}"


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
    default_error_messages: ClassVar[dict[str, str]] = {"required": "is required", "null": "must not be null"}


class Checked(Value):
    """A value that must pass ``check``; otherwise ``message``."""

    def __init__(self, check, message: str, **kwargs):
        super().__init__(**kwargs)
        self.check, self.message = check, message

    def _deserialize(self, value, attr, data, **kwargs):
        if not self.check(value):
            raise ValidationError(self.message)
        return value


def Name(**kwargs) -> Checked:  # reads like a field class
    return Checked(lambda v: isinstance(v, str) and NAME_RE.match(v) is not None, NAME_RULE, **kwargs)


def Text(**kwargs) -> Checked:
    return Checked(lambda v: isinstance(v, str) and v.strip() != "", "must be a non-empty string", **kwargs)


def Flag(**kwargs) -> Checked:
    return Checked(lambda v: isinstance(v, bool), "must be true or false", **kwargs)


class PositiveInt(Value):
    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValidationError("must be a positive integer")
        if value > INT32_MAX:
            raise ValidationError(f"must be at most {INT32_MAX}")
        return value


def Choice(choices, **kwargs) -> Checked:
    return Checked(lambda v: v in choices, f"must be one of {', '.join(choices)}", **kwargs)


class HttpUrl(Value):
    _check = validate.URL(schemes={"http", "https"}, require_tld=False)

    def _deserialize(self, value, attr, data, **kwargs):
        try:
            return self._check(value).rstrip("/")
        except (ValidationError, TypeError):
            raise ValidationError("must be an http:// or https:// URL") from None


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


class StringList(Value):
    """A TOML list of strings, each passing ``item_ok`` -> a tuple (order kept; ``unique``: duplicates dropped).
    ``list_rule`` is the problem for a value that is not a list (or an empty one unless ``allow_empty``),
    ``item_rule`` the problem of each item that does not pass."""

    def __init__(self, item_ok: Callable[[str], bool], list_rule: str, item_rule: str, *, allow_empty: bool = True,
                 unique: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.item_ok, self.list_rule, self.item_rule = item_ok, list_rule, item_rule
        self.allow_empty, self.unique = allow_empty, unique

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, list) or (not value and not self.allow_empty):
            raise ValidationError(self.list_rule)
        errors = {index: [self.item_rule] for index, item in enumerate(value)
                  if not isinstance(item, str) or not self.item_ok(item)}
        if errors:
            raise ValidationError(errors)
        return tuple(dict.fromkeys(value)) if self.unique else tuple(value)


class StrictSchema(Schema):
    error_messages: ClassVar[dict[str, str]] = {"unknown": "unknown key", "type": "must be a table"}


class FromEnv(Value):
    """The name of an environment variable that must be set when the file loads; loads as the
    variable's value passed through ``parse``, which raises ``ValueError("must ...")`` for a bad value.
    Problems name the variable, never its value (it is usually a secret).
    """

    def __init__(self, parse: Callable[[str], object] = str, **kwargs):
        super().__init__(**kwargs)
        self.parse = parse

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, str) or not ENV_NAME_RE.match(value):
            raise ValidationError("must be an environment variable name")
        raw = os.environ.get(value)
        if not raw:
            raise ValidationError(f"environment variable {value} is not set")
        try:
            return self.parse(raw)
        except ValueError as exc:
            raise ValidationError(f"environment variable {value} {exc}") from None
