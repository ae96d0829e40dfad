"""Opaque, tamper-evident keyset cursors for the ops lists (fulfilments, audit entries).

A cursor is ``base64url(JSON payload) . base64url(HMAC-SHA256(payload))[:22]``. The payload holds the
list it belongs to, a digest of the filters it was made with (a cursor is only good for the same
filters) and the sort key of the last row of the page. Anything else — garbage, an edited payload, a
cursor of another list or other filters — is refused with :class:`CursorError` (400 ``invalid_cursor``).

The HMAC key is derived from the ``secret_key`` setting when there is one (its first key signs, each of
its keys verifies: rotating ``KB_SECRET_KEY`` keeps clients' cursors good), else derived from what every process of
a deployment shares and keeps secret (the database URL and the games' Kraty server keys): cursors made
by one web worker verify in every other, and stop verifying when those change (clients start again).
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json

VERSION = 1


class CursorError(Exception):
    """The cursor is not one this server made for this list and these filters."""


def secrets_from(services) -> list[bytes]:
    """The HMAC keys: the first signs new cursors, every one verifies."""
    configured = services.settings.secret_keys
    if configured:
        return [hashlib.sha256(b"kraty-bridge cursors\0" + key.encode()).digest() for key in configured]
    material = [services.settings.database_url] + sorted(
        f"{ns}\0{game.server_key}" for ns, game in services.catalog.games.items())
    return [hashlib.sha256(("kraty-bridge cursors\0" + "\0".join(material)).encode()).digest()]


def filters_digest(filters: dict) -> str:
    canonical = json.dumps({k: v for k, v in sorted(filters.items()) if v is not None}, default=str,
                           separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(secret: bytes, payload: bytes) -> str:
    return _b64(hmac.new(secret, payload, hashlib.sha256).digest())[:22]


def encode(secret: bytes, kind: str, filters: dict, key: list) -> str:
    payload = json.dumps({"v": VERSION, "k": kind, "f": filters_digest(filters), "a": key},
                         separators=(",", ":")).encode()
    return f"{_b64(payload)}.{_mac(secret, payload)}"


def decode(secrets: list[bytes], kind: str, filters: dict, token: str) -> list:
    """The sort key the cursor carries; CursorError if it is not a valid cursor for ``kind`` and ``filters``."""
    body, dot, mac = token.partition(".")
    if not dot or not body or len(token) > 1024:
        raise CursorError("the cursor is malformed")
    try:
        payload = _unb64(body)
    except (binascii.Error, ValueError):
        raise CursorError("the cursor is malformed") from None
    if not any(hmac.compare_digest(mac.encode(), _mac(secret, payload).encode()) for secret in secrets):
        raise CursorError("the cursor was not made by this server (or was altered)")
    try:
        data = json.loads(payload)
    except ValueError:
        raise CursorError("the cursor is malformed") from None
    if not isinstance(data, dict) or data.get("v") != VERSION or data.get("k") != kind:
        raise CursorError(f"the cursor is not one of this list ({kind})")
    if data.get("f") != filters_digest(filters):
        raise CursorError("the cursor was made with other filters: repeat the filters of the first page")
    if not isinstance(data.get("a"), list):
        raise CursorError("the cursor is malformed")
    return data["a"]
