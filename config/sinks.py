"""Sinks: where kraty-bridge sends its events (purchases, Kraty's webhooks) for a studio's CRM and analytics.

``sinks.toml`` (see ``config/examples/sinks.toml``)::

    [sinks.crm]
    type = "http"                          # the only type so far ("segment" is planned)
    url = "https://crm.example.com/hooks/kraty"
    secret_env = "KB_SINK_CRM_SECRET"      # or secret = "whsec_..." (local trials only)
    headers = { "X-Api-Key" = "..." }      # optional static headers
    events = ["purchase.*", "wallet.changed"]  # glob patterns on the event type; default: every event
    environments = ["production"]          # default; add "sandbox" to receive test purchases too
    schedule = [0, 5, 300, 1800, 7200, 18000, 36000, 36000]  # seconds before each attempt (the default)
    rate_limit = 10                        # at most this many requests per rate_window seconds (optional)
    rate_window = 1                        # seconds (default 1)
    timeout = 15                           # seconds per request (default 15)

No file (``KB_SINKS`` unset) or an empty file means no sinks: nothing is recorded for delivery.
``load_sinks`` raises ``SinksError`` listing every problem, one ``file: key.path: problem`` line each;
problems never repeat a secret's value.
"""

from __future__ import annotations

import base64
import binascii
import fnmatch
import os
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from marshmallow import ValidationError, validates_schema

from config.toml_schema import (
    Checked,
    ConfigFileError,
    FromEnv,
    HttpUrl,
    StrictSchema,
    Table,
    Value,
    flatten_errors,
    read_toml,
)

__all__ = ["DEFAULT_SCHEDULE", "ENVIRONMENTS", "SINK_TYPES", "Sink", "Sinks", "SinksError", "load_sinks",
           "parse_secret"]

SINK_TYPES = ("http",)  # "segment" comes next: a write key instead of url/secret, the same filters and schedule
ENVIRONMENTS = ("production", "sandbox")
DEFAULT_SCHEDULE = (0.0, 5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0, 36000.0)
DEFAULT_TIMEOUT = 15.0
MAX_TIMEOUT = 60.0
MAX_DELAY = 7 * 86400.0
SECRET_RULE = "must be a Standard Webhooks secret: whsec_ followed by the base64 of 24-64 random bytes"
_HEADER_NAME_RE = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]{1,128}\Z")
_RESERVED_HEADERS = ("content-type", "content-length", "host", "user-agent")
_EVENT_PATTERN_RE = re.compile(r"[A-Za-z0-9_.*?:\[\]-]{1,128}\Z")


class SinksError(ConfigFileError):
    """The sinks file is unreadable or invalid; one ``file: key.path: problem`` line per problem."""


@dataclass(frozen=True)
class Sink:
    """One configured destination. Hashable; ``repr`` hides the secret and the headers' values."""

    name: str
    type: str
    url: str
    secret: str = field(repr=False)
    headers: tuple[tuple[str, str], ...] = field(default=(), repr=False)
    events: tuple[str, ...] = ("*",)
    environments: frozenset[str] = frozenset({"production"})
    schedule: tuple[float, ...] = DEFAULT_SCHEDULE
    rate_limit: int | None = None
    rate_window: float = 1.0
    timeout: float = DEFAULT_TIMEOUT

    def wants(self, event_type: str, environment: str) -> bool:
        """Whether an event of this type from this environment goes to this sink."""
        return environment in self.environments and any(
            fnmatch.fnmatchcase(event_type, pattern) for pattern in self.events)

    @property
    def max_attempts(self) -> int:
        return len(self.schedule)

    def delay_before(self, attempt: int) -> float | None:
        """Seconds to wait before attempt number ``attempt`` (1-based); None after the last one."""
        return self.schedule[attempt - 1] if 1 <= attempt <= len(self.schedule) else None


class Sinks:
    """The configured sinks, by name, in file order."""

    def __init__(self, sinks: Iterable[Sink] = (), source: str = ""):
        self.source = source
        self.sinks: Mapping[str, Sink] = MappingProxyType({sink.name: sink for sink in sinks})

    def __len__(self) -> int:
        return len(self.sinks)

    def __iter__(self) -> Iterator[Sink]:
        return iter(self.sinks.values())

    def get(self, name: str) -> Sink | None:
        return self.sinks.get(name)

    def matching(self, event_type: str, environment: str) -> list[Sink]:
        return [sink for sink in self.sinks.values() if sink.wants(event_type, environment)]


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


# ---------------------------------------------------------------- file schema
def _is_secret(value) -> bool:
    try:
        return isinstance(value, str) and parse_secret(value) == value
    except ValueError:
        return False


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


class SinkSchema(StrictSchema):
    type = Checked(lambda v: v in SINK_TYPES, f"must be one of {', '.join(SINK_TYPES)}", load_default="http")
    url = HttpUrl(required=True)
    secret = Checked(_is_secret, SECRET_RULE)
    secret_env = FromEnv(parse_secret)
    headers = Headers(load_default=())
    events = Patterns(load_default=("*",))
    environments = Environments(load_default=frozenset({"production"}))
    schedule = Schedule(load_default=DEFAULT_SCHEDULE)
    rate_limit = Checked(lambda v: isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= 1_000_000,
                         "must be a positive integer (requests per rate_window)", load_default=None)
    rate_window = PositiveNumber(maximum=86400.0, load_default=1.0)
    timeout = PositiveNumber(maximum=MAX_TIMEOUT, load_default=DEFAULT_TIMEOUT)

    @validates_schema(skip_on_field_errors=False, pass_original=True)
    def _one_secret(self, data, original, **kwargs):
        if isinstance(original, dict) and ("secret" in original) == ("secret_env" in original):
            raise ValidationError("exactly one of secret or secret_env is required")


class SinksFileSchema(StrictSchema):
    sinks = Table(SinkSchema, load_default=dict)


def load_sinks(path: str | os.PathLike | None) -> Sinks:
    """Read and validate a sinks TOML file. ``None`` (``KB_SINKS`` unset) or an empty file: no sinks."""
    if path is None:
        return Sinks()
    source = os.fspath(path)
    raw = read_toml(source, SinksError)
    try:
        data = SinksFileSchema().load(raw)
    except ValidationError as exc:
        raise SinksError(source, flatten_errors(exc.messages)) from None
    sinks = []
    for name, spec in data["sinks"].items():
        secret = spec.get("secret") or spec.get("secret_env")
        sinks.append(Sink(name=name, type=spec["type"], url=spec["url"], secret=secret, headers=spec["headers"],
                          events=spec["events"], environments=spec["environments"], schedule=spec["schedule"],
                          rate_limit=spec["rate_limit"], rate_window=spec["rate_window"], timeout=spec["timeout"]))
    return Sinks(sinks, source=source)
