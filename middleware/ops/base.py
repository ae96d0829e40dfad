"""The ops service's vocabulary: actions and their roles, limits, the actor, its refusals, redaction."""
from __future__ import annotations

import getpass
import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime




from middleware.ledger import api_keys



RETRY, REVOKE, ATTACH_PLAYER, MAKE_GOOD, RESOLVE = "retry", "revoke", "attach-player", "make-good", "resolve"
ACTION_ROLES = {RETRY: "operator", REVOKE: "operator", ATTACH_PLAYER: "operator", MAKE_GOOD: "admin",
                RESOLVE: "admin"}
SOURCES = ("accelbyte", "app_store", "google_play", "stripe")
ENVIRONMENTS = ("production", "sandbox")
MAX_REASON = 500
MAX_IDEMPOTENCY_KEY = 128
MAX_PAGE = 200
PLAYER_ORDERS = 50
MAX_MAKE_GOOD_LINES = 20
MAX_AMOUNT = 2**53
REDACTED = "[redacted]"


class OpsError(Exception):
    def __init__(self, status: int, code: str, message: str, details: dict | None = None):
        super().__init__(message)
        self.status, self.code, self.message, self.details = status, code, message, details


@dataclass(frozen=True)
class Actor:
    """Who does something: ``key:<name>`` (an API key), ``cli:<os user>``, ``console:<key name>``,
    ``sso:<email>`` (a person signed in to the console with OpenID Connect)."""

    name: str
    role: str | None                      # the key's role; None: a trusted caller (the CLI) may do anything
    namespaces: tuple[str, ...] | None = None   # the games it may see; None: all
    request_id: str | None = None

    @classmethod
    def from_key(cls, key, request_id: str | None = None, prefix: str = "key") -> Actor:
        return cls(f"{prefix}:{key.name}", key.role, None if key.namespaces is None else tuple(key.namespaces),
                   request_id)

    @classmethod
    def cli(cls, user: str | None = None) -> Actor:
        return cls(f"cli:{user or getpass.getuser()}", None)

    def sees(self, namespace: str | None) -> bool:
        return self.namespaces is None or namespace in self.namespaces

    def may(self, role: str) -> bool:
        return self.role is None or api_keys.allows(self.role, role)


def utc(value: datetime) -> datetime:
    """An aware datetime in UTC: what the ledger stores (SQLite compares the text, offsets dropped)."""
    return value.astimezone(UTC)


def iso(value: datetime | None) -> str | None:
    return utc(value).isoformat().replace("+00:00", "Z") if value is not None else None


# -- redaction ---------------------------------------------------------------------------------------

_SECRET_KEY = re.compile(r"authori[sz]ation|signature|token|secret|password|passwd|api[-_]?key|cookie|"
                         r"credential|private[-_]?key|session[-_]?key", re.IGNORECASE)
_SECRET_VALUE = re.compile(r"^\s*(bearer|basic|token)\s+\S+|^(sk|rk|whsec)_(live|test)?_?\S+|^kb_\S{20,}",
                           re.IGNORECASE)


def redact(value):
    """A copy of a decoded JSON value with secrets replaced by ``[redacted]``: the values of keys that name
    credentials (authorization, signatures, tokens, secrets, passwords, API keys, cookies...) and strings that
    look like one (``Bearer ...``, Stripe ``sk_``/``rk_``/``whsec_`` keys, our own ``kb_`` keys)."""
    if isinstance(value, dict):
        return {k: (REDACTED if isinstance(k, str) and _SECRET_KEY.search(k) and v not in (None, "", [], {})
                    else redact(v)) for k, v in value.items()}
    if isinstance(value, list):
        return [redact(v) for v in value]
    if isinstance(value, str) and _SECRET_VALUE.search(value):
        return REDACTED
    return value


def _body(raw: bytes | None) -> dict:
    """An inbound event's raw body for ops eyes: decoded and redacted when JSON, else only its size."""
    raw = raw or b""
    try:
        return {"body": redact(json.loads(raw))}
    except (ValueError, UnicodeDecodeError):
        return {"body": None, "bodyNote": f"not JSON ({len(raw)} bytes), not shown"}


def check_reason_and_key(reason, idempotency_key) -> tuple[str, dict[str, list[str]]]:
    """Every ops action's common input: the reason (required, stripped, bounded) and the optional idempotency
    key; the stripped reason and the per-field problems found so far."""
    fields: dict[str, list[str]] = {}
    reason = reason.strip() if isinstance(reason, str) else ""
    if not reason:
        fields["reason"] = ["required: why (recorded in the audit log)"]
    elif len(reason) > MAX_REASON:
        fields["reason"] = [f"at most {MAX_REASON} characters"]
    if idempotency_key is not None and not (isinstance(idempotency_key, str)
                                            and 0 < len(idempotency_key) <= MAX_IDEMPOTENCY_KEY
                                            and idempotency_key.isprintable()):
        fields["idempotencyKey"] = [f"1-{MAX_IDEMPOTENCY_KEY} printable characters"]
    return reason, fields
