"""The values of a sinks file checked one by one: Standard Webhooks secrets, one-line texts, header tables,
event patterns, environments, retry schedules and positive numbers (marshmallow fields for ``config.sinks``)."""
from __future__ import annotations

import base64
import binascii
import re

from marshmallow import ValidationError

from config.toml_schema import Value

ENVIRONMENTS = ("production", "sandbox")
MAX_DELAY = 7 * 86400.0
SECRET_RULE = "must be a Standard Webhooks secret: whsec_ followed by the base64 of 24-64 random bytes"
_HEADER_NAME_RE = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]{1,128}\Z")
_RESERVED_HEADERS = ("content-type", "content-length", "host", "user-agent")
_EVENT_PATTERN_RE = re.compile(r"[A-Za-z0-9_.*?:\[\]-]{1,128}\Z")


def parse_secret(raw: str) -> str:
    """A ``whsec_`` secret, checked (raises ``ValueError("must ...")``, never repeating the value)."""
    raw = raw.strip()
    if not raw.startswith("whsec_"):
        raise ValueError(SECRET_RULE)
    try:
        key = base64.b64decode(raw[len("whsec_"):], validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(SECRET_RULE) from None
    if not 24 <= len(key) <= 64:
        raise ValueError(SECRET_RULE)
    return raw


def _is_secret(value) -> bool:
    try:
        return isinstance(value, str) and parse_secret(value) == value
    except ValueError:
        return False


def _is_text(value) -> bool:
    return isinstance(value, str) and value.strip() != "" and "\n" not in value and "\r" not in value


def _text(raw: str) -> str:
    if not _is_text(raw.strip()):
        raise ValueError("must be one line of text")
    return raw.strip()


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


class Headers(Value):
    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, dict):
            raise ValidationError("must be a table of header names to string values")
        errors = {}
        for name, header in value.items():
            if not _HEADER_NAME_RE.match(name):
                errors[name] = ["is not a valid HTTP header name"]
            elif name.lower() in _RESERVED_HEADERS or name.lower().startswith("webhook-"):
                errors[name] = ["is set by kraty-bridge and cannot be configured"]
            elif not isinstance(header, str) or "\n" in header or "\r" in header:
                errors[name] = ["must be a string on one line"]
        if errors:
            raise ValidationError(errors)
        return tuple(value.items())


class Patterns(Value):
    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, list) or not value or not all(
                isinstance(v, str) and _EVENT_PATTERN_RE.match(v) for v in value):
            raise ValidationError("must be a non-empty list of event types or glob patterns (purchase.*)")
        return tuple(dict.fromkeys(value))


class Environments(Value):
    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, list) or not value or not all(v in ENVIRONMENTS for v in value):
            raise ValidationError(f"must be a non-empty list of {', '.join(ENVIRONMENTS)}")
        return frozenset(value)


class Schedule(Value):
    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, list) or not value or not all(
                _is_number(v) and 0 <= v <= MAX_DELAY for v in value):
            raise ValidationError(f"must be a non-empty list of delays in seconds (0 to {MAX_DELAY:.0f}), "
                                  "one per attempt")
        return tuple(float(v) for v in value)


class PositiveNumber(Value):
    def __init__(self, maximum: float | None = None, **kwargs):
        super().__init__(**kwargs)
        self.maximum = maximum

    def _deserialize(self, value, attr, data, **kwargs):
        if not _is_number(value) or value <= 0 or (self.maximum is not None and value > self.maximum):
            raise ValidationError("must be a number greater than 0" +
                                  (f" and at most {self.maximum:g}" if self.maximum is not None else ""))
        return float(value)
