"""Settings from the environment: typed, documented, checked at start.

Every setting is listed once in ``SETTINGS`` (config/setting_table.py); the README's configuration table and
``.env.example`` are written from the same names. Nothing is read at import time:
``load_settings(environ)`` is called by the app factory and the worker entry point.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, fields
from dataclasses import field as dataclass_field

from config import oidc
from config.app_store_config import parse_fingerprints
from config.secret_files import SecretFileError, split_keys, with_secret_files
from config.redis_url import check_redis_url
from config.setting_table import MIN_METRICS_KEY, ROOT, SETTINGS  # noqa: F401  (ROOT: imported from here by many)

MIN_SECRET_KEY = 32
MAX_GRANT_TOTAL = 2**53  # exact in JSON everywhere, and within Kraty's signed 64-bit amounts


class SettingsError(Exception):
    """A setting is missing or malformed; the message names it."""


@dataclass(frozen=True)
class Settings:
    database_url: str
    redis_url: str
    catalog_path: str
    storefronts_path: str
    sinks_path: str | None
    max_body_bytes: int
    kraty_connect_timeout: float
    kraty_read_timeout: float
    retry_max_attempts: int
    retry_base_seconds: float
    retry_max_delay_seconds: float
    retry_max_age_seconds: float
    lease_seconds: float
    reconcile_interval_seconds: float
    reconcile_stale_seconds: float
    untraced_reversal_seconds: float
    put_wait_seconds: float
    put_settle_seconds: float
    max_grant_total: int
    stripe_api_base: str
    stripe_tolerance_seconds: int
    apple_root_sha256: frozenset[str]
    google_voided_poll_seconds: float
    google_certs_url: str
    google_api_base: str
    google_token_uri: str | None
    apple_api_base: str | None
    apple_sandbox_api_base: str | None
    backfill_interval_seconds: float
    log_level: str
    log_json: bool
    secret_key: str | None = dataclass_field(repr=False)   # signs console sessions: kept out of repr and logs
    metrics_key: str | None = dataclass_field(repr=False)  # the bearer key of /metrics
    metrics_bind: str | None = None
    redis_sentinel_password: str | None = dataclass_field(default=None, repr=False)
    database_pool_size: int = 5
    database_max_overflow: int = 10
    database_pool_timeout: float = 30.0
    database_pool_recycle: float = 1800.0
    database_pre_ping: bool = True
    database_pre_ping_idle: float = 1.0
    database_connect_timeout: int = 10
    database_statement_timeout: float = 0.0
    database_prepared_statements: bool = True
    otel_enabled: bool = False
    otel_endpoint: str = "http://127.0.0.1:4318/v1/traces"
    otel_service_name: str = "kraty-bridge"
    otel_sample_ratio: float = 1.0
    console_session_hours: float = 12.0
    console_idle_minutes: float = 60.0
    oidc_issuer: str | None = None
    oidc_client_id: str | None = None
    oidc_client_secret: str | None = dataclass_field(default=None, repr=False)
    oidc_scopes: str = "openid email profile"
    oidc_role_claim: str = "groups"
    oidc_roles: str | None = None
    oidc_redirect_url: str | None = None

    @property
    def secret_keys(self) -> tuple[str, ...]:
        """KB_SECRET_KEY's keys: the first signs (console cookies, ops API cursors), every one verifies."""
        return split_keys(self.secret_key)

    def replace(self, **changes) -> Settings:
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        values.update(changes)
        return Settings(**values)


def _default_database_url() -> str:
    return f"sqlite:///{ROOT / 'instance' / 'kraty-bridge.db'}"


ZERO_ALLOWED = frozenset({"KB_DATABASE_MAX_OVERFLOW", "KB_DATABASE_STATEMENT_TIMEOUT", "KB_OTEL_SAMPLE_RATIO",
                          "KB_DATABASE_PRE_PING_IDLE"})


def _parse(name: str, kind: type, raw: str):
    if kind is str:
        if not raw.strip():
            raise SettingsError(f"{name}: must not be empty")
        return raw.strip()
    if kind is bool:
        low = raw.strip().lower()
        if low in ("1", "true", "yes", "on"):
            return True
        if low in ("0", "false", "no", "off"):
            return False
        raise SettingsError(f"{name}: expected true or false, got {raw!r}")
    try:
        value = kind(raw)
    except ValueError:
        raise SettingsError(f"{name}: expected a number, got {raw!r}") from None
    if value < 0 or (value == 0 and name not in ZERO_ALLOWED):
        raise SettingsError(f"{name}: must be {'0 or more' if name in ZERO_ALLOWED else 'greater than 0'}, "
                            f"got {raw!r}")
    return value


def parse_bind(value: str) -> tuple[str, int]:
    """``host:port`` (``[::1]:9108`` for IPv6) -> (host, port); ValueError if it is not one."""
    host, sep, port = value.rpartition(":")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if not sep or not host or not port.isascii() or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"expected host:port (e.g. 127.0.0.1:9108), got {value!r}")
    return host, int(port)


def _check_metrics(values: dict) -> None:
    if values["metrics_key"] is not None and len(values["metrics_key"]) < MIN_METRICS_KEY:
        raise SettingsError(f"KB_METRICS_KEY: at least {MIN_METRICS_KEY} characters (make one with "
                            "python -c 'import secrets; print(secrets.token_urlsafe(32))')")
    if values["metrics_bind"] is not None:
        try:
            parse_bind(values["metrics_bind"])
        except ValueError as exc:
            raise SettingsError(f"KB_METRICS_BIND: {exc}") from None


def load_settings(environ=None, **overrides) -> Settings:
    """Read every ``KB_*`` setting from ``environ`` (default ``os.environ``)."""
    try:
        environ = with_secret_files(os.environ if environ is None else environ)  # KB_SECRET_KEY_FILE...
    except SecretFileError as exc:
        raise SettingsError(str(exc)) from None
    values = {}
    for name, (field, kind, default, _meaning) in SETTINGS.items():
        raw = environ.get(name)
        if raw is None or raw == "":
            values[field] = _default_database_url() if name == "KB_DATABASE_URL" else default
        else:
            values[field] = _parse(name, kind, raw)
    values.update(overrides)
    if values["log_level"].upper() not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        raise SettingsError(f"KB_LOG_LEVEL: expected DEBUG, INFO, WARNING or ERROR, got {values['log_level']!r}")
    values["log_level"] = values["log_level"].upper()
    if not re.match(r"https?://[^\s/]+", values["stripe_api_base"]):
        raise SettingsError(f"KB_STRIPE_API_BASE: expected an http:// or https:// URL, got {values['stripe_api_base']!r}")
    values["stripe_api_base"] = values["stripe_api_base"].rstrip("/")
    values["google_token_uri"] = values["google_token_uri"] or None
    for name, key in (("KB_GOOGLE_CERTS_URL", "google_certs_url"), ("KB_GOOGLE_API_BASE", "google_api_base"),
                      ("KB_GOOGLE_TOKEN_URI", "google_token_uri"), ("KB_APPLE_API_BASE", "apple_api_base"),
                      ("KB_APPLE_SANDBOX_API_BASE", "apple_sandbox_api_base")):
        if values[key] is not None and not re.match(r"https?://[^\s/]+\S*\Z", values[key]):
            raise SettingsError(f"{name}: expected an http:// or https:// URL, got {values[key]!r}")
    values["google_api_base"] = values["google_api_base"].rstrip("/")
    if values["secret_key"] is not None:
        keys = split_keys(values["secret_key"])
        if not keys or min(map(len, keys)) < MIN_SECRET_KEY:
            raise SettingsError(f"KB_SECRET_KEY: at least {MIN_SECRET_KEY} characters per key (a comma-separated "
                                "list, the signing key first; make one with "
                                "python -c 'import secrets; print(secrets.token_urlsafe(32))')")
        values["secret_key"] = ",".join(keys)
    _check_metrics(values)
    try:
        oidc.check(values)
    except ValueError as exc:
        raise SettingsError(f"{exc.args[0]}: {exc.args[1]}") from None
    if values["max_grant_total"] > MAX_GRANT_TOTAL:
        raise SettingsError(f"KB_MAX_GRANT_TOTAL: at most {MAX_GRANT_TOTAL} (2^53), got {values['max_grant_total']}")
    if values["otel_sample_ratio"] > 1:
        raise SettingsError(f"KB_OTEL_SAMPLE_RATIO: expected 0 to 1, got {values['otel_sample_ratio']!r}")
    if not re.match(r"https?://[^\s/]+\S*\Z", values["otel_endpoint"]):
        raise SettingsError(f"KB_OTEL_ENDPOINT: expected an http:// or https:// URL, got {values['otel_endpoint']!r}")
    try:
        check_redis_url(values["redis_url"])
    except ValueError as exc:
        raise SettingsError(f"KB_REDIS_URL: {exc}") from None
    try:
        values["apple_root_sha256"] = parse_fingerprints(values["apple_root_sha256"])
    except ValueError as exc:
        raise SettingsError(f"KB_APPLE_ROOT_SHA256: {exc}") from None
    return Settings(**values)
