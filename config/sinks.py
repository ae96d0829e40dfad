"""Sinks: where kraty-bridge sends its events (purchases, Kraty's webhooks) for a studio's CRM and analytics.

``sinks.toml`` (see ``config/examples/sinks.toml`` and ``docs/sinks.md``)::

    [sinks.crm]
    type = "http"                          # the default: a JSON POST signed per Standard Webhooks
    url = "https://crm.example.com/hooks/kraty"
    secret_env = "KB_SINK_CRM_SECRET"      # or secret = "whsec_..." (local trials only)
    headers = { "X-Api-Key" = "..." }      # optional static headers
    events = ["purchase.*", "wallet.changed"]  # glob patterns on the event type; default: every event
    environments = ["production"]          # default; add "sandbox" to receive test purchases too
    schedule = [0, 5, 300, 1800, 7200, 18000, 36000, 36000]  # seconds before each attempt (the default)
    rate_limit = 10                        # at most this many requests per rate_window seconds (optional)
    rate_window = 1                        # seconds (default 1)
    timeout = 15                           # seconds per request (default 15)

    [sinks.analytics]
    type = "segment"                       # Segment's HTTP Tracking API (RudderStack, Jitsu... accept it too)
    write_key_env = "KB_SEGMENT_WRITE_KEY" # or write_key = "..." (local trials only); sent as basic auth
    url = "https://api.segment.io/v1/batch"  # the default; RudderStack / Jitsu: your data plane's /v1/batch
    batch_size = 100                       # events per /v1/batch request (default 100, at most 500)
    regulations_token_env = "KB_SEGMENT_API_TOKEN"  # Public API token: player.deleted -> a deletion regulation
    regulations_url = "https://api.segmentapis.com/regulations"  # the default (EU: eu1.api.segmentapis.com)
    # events, environments, schedule, rate_limit, rate_window and timeout as for http

``secret``/``secret_env`` (exactly one) and ``headers`` are for http sinks; ``write_key``/``write_key_env``
(exactly one), ``batch_size`` and ``regulations_*`` for segment sinks. A segment sink whose ``events`` take
``player.deleted`` needs ``regulations_token_env`` (the deletion is forwarded as a Segment regulation, never as
a tracking call).

No file (``KB_SINKS`` unset) or an empty file means no sinks: nothing is recorded for delivery.
``load_sinks`` raises ``SinksError`` listing every problem, one ``file: key.path: problem`` line each;
problems never repeat a secret's value.
"""

from __future__ import annotations

import fnmatch
import os
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
    flatten_errors,
    read_toml,
)

from config.sink_values import (
    ENVIRONMENTS,
    SECRET_RULE,
    Environments,
    Headers,
    Patterns,
    PositiveNumber,
    Schedule,
    _is_secret,
    _is_text,
    _text,
    parse_secret,
)

__all__ = ["DEFAULT_SCHEDULE", "DELETION", "ENVIRONMENTS", "SINK_TYPES", "Sink", "Sinks", "SinksError", "load_sinks",
           "parse_secret"]

SINK_TYPES = ("http", "segment")
HTTP_ONLY = ("secret", "secret_env", "headers")
SEGMENT_ONLY = ("write_key", "write_key_env", "batch_size", "regulations_url", "regulations_token_env")
DEFAULT_SEGMENT_URL = "https://api.segment.io/v1/batch"
DEFAULT_REGULATIONS_URL = "https://api.segmentapis.com/regulations"
DEFAULT_BATCH_SIZE = 100
MAX_BATCH_SIZE = 500
DELETION = "player.deleted"  # forwarded to segment sinks as a regulation (docs/sinks.md)
DEFAULT_SCHEDULE = (0.0, 5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0, 36000.0)
DEFAULT_TIMEOUT = 15.0
MAX_TIMEOUT = 60.0


class SinksError(ConfigFileError):
    """The sinks file is unreadable or invalid; one ``file: key.path: problem`` line per problem."""


@dataclass(frozen=True)
class Sink:
    """One configured destination. Hashable; ``repr`` hides the secrets (signing secret, write key, API token)
    and the headers' values. ``secret``/``headers`` are an http sink's; ``write_key``, ``batch_size`` and
    ``regulations_*`` a segment sink's."""

    name: str
    type: str
    url: str
    secret: str = field(default="", repr=False)
    headers: tuple[tuple[str, str], ...] = field(default=(), repr=False)
    events: tuple[str, ...] = ("*",)
    environments: frozenset[str] = frozenset({"production"})
    schedule: tuple[float, ...] = DEFAULT_SCHEDULE
    rate_limit: int | None = None
    rate_window: float = 1.0
    timeout: float = DEFAULT_TIMEOUT
    write_key: str = field(default="", repr=False)
    batch_size: int = DEFAULT_BATCH_SIZE
    regulations_url: str = DEFAULT_REGULATIONS_URL
    regulations_token: str = field(default="", repr=False)

    def takes(self, event_type: str) -> bool:
        """Whether this sink's event-type filter lets ``event_type`` through."""
        return any(fnmatch.fnmatchcase(event_type, pattern) for pattern in self.events)

    def wants(self, event_type: str, environment: str) -> bool:
        """Whether an event of this type from this environment goes to this sink."""
        return environment in self.environments and self.takes(event_type)

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


# ---------------------------------------------------------------- file schema
class SinkSchema(StrictSchema):
    type = Checked(lambda v: v in SINK_TYPES, f"must be one of {', '.join(SINK_TYPES)}", load_default="http")
    url = HttpUrl()
    secret = Checked(_is_secret, SECRET_RULE)
    secret_env = FromEnv(parse_secret)
    headers = Headers(load_default=())
    write_key = Checked(_is_text, "must be a non-empty string on one line")
    write_key_env = FromEnv(_text)
    batch_size = Checked(lambda v: isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= MAX_BATCH_SIZE,
                         f"must be an integer from 1 to {MAX_BATCH_SIZE} (events per /v1/batch request)",
                         load_default=DEFAULT_BATCH_SIZE)
    regulations_url = HttpUrl(load_default=DEFAULT_REGULATIONS_URL)
    regulations_token_env = FromEnv(_text)
    events = Patterns(load_default=("*",))
    environments = Environments(load_default=frozenset({"production"}))
    schedule = Schedule(load_default=DEFAULT_SCHEDULE)
    rate_limit = Checked(lambda v: isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= 1_000_000,
                         "must be a positive integer (requests per rate_window)", load_default=None)
    rate_window = PositiveNumber(maximum=86400.0, load_default=1.0)
    timeout = PositiveNumber(maximum=MAX_TIMEOUT, load_default=DEFAULT_TIMEOUT)

    @validates_schema(skip_on_field_errors=False, pass_original=True)
    def _keys_of_its_type(self, data, original, **kwargs):
        if not isinstance(original, dict) or original.get("type", "http") not in SINK_TYPES:
            return
        errors: dict[str, list[str]] = {}
        if original.get("type", "http") == "http":
            for key in SEGMENT_ONLY:
                if key in original:
                    errors[key] = ["is for segment sinks only"]
            if "url" not in original:
                errors["url"] = ["is required"]
            if ("secret" in original) == ("secret_env" in original):
                errors.setdefault("_schema", []).append("exactly one of secret or secret_env is required")
        else:
            for key in HTTP_ONLY:
                if key in original:
                    errors[key] = ["is for http sinks only (a segment sink authenticates with its write key)"]
            if ("write_key" in original) == ("write_key_env" in original):
                errors.setdefault("_schema", []).append("exactly one of write_key or write_key_env is required")
            events = data.get("events", ()) if "events" in original else ("*",)
            if any(fnmatch.fnmatchcase(DELETION, p) for p in events) and "regulations_token_env" not in original:
                errors.setdefault("_schema", []).append(
                    f"events take {DELETION}, which a segment sink forwards as a deletion regulation: set "
                    f"regulations_token_env (a Segment Public API token), or leave {DELETION} out of events and "
                    "handle erasure in Segment yourself")
        if errors:
            raise ValidationError(errors)


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
        common = {key: spec[key] for key in ("type", "events", "environments", "schedule", "rate_limit",
                                             "rate_window", "timeout")}
        if spec["type"] == "segment":
            sinks.append(Sink(name=name, **common, url=spec.get("url", DEFAULT_SEGMENT_URL),
                              write_key=spec.get("write_key") or spec["write_key_env"], batch_size=spec["batch_size"],
                              regulations_url=spec["regulations_url"],
                              regulations_token=spec.get("regulations_token_env", "")))
        else:
            sinks.append(Sink(name=name, **common, url=spec["url"], secret=spec.get("secret") or spec["secret_env"],
                              headers=spec["headers"]))
    return Sinks(sinks, source=source)
