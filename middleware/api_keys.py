"""API keys for our own ``/v1`` APIs: created by ``flask keys create``, shown once, kept as SHA-256.

Roles: ``receipts`` (the studio backend posting store receipts) and the ops ladder
``viewer`` < ``operator`` < ``admin``; ``admin`` may do everything. A key may be limited to
some games (namespaces). Missing or unknown key -> 401; a key too weak for the call -> 403.
"""
from __future__ import annotations

import hashlib
import secrets

from flask import g, request
from sqlalchemy import select
from sqlalchemy.orm import Session

from .api.errors import ApiError
from .ledger.models import ApiKey, utcnow

OPS_LADDER = ("viewer", "operator", "admin")
ROLES = ("receipts", *OPS_LADDER)
PREFIX = "kb_"


def new_key() -> str:
    return PREFIX + secrets.token_urlsafe(32)


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def allows(have: str, need: str) -> bool:
    if have == need or have == "admin":
        return True
    return have in OPS_LADDER and need in OPS_LADDER and OPS_LADDER.index(have) >= OPS_LADDER.index(need)


def create(session: Session, name: str, role: str, namespaces: list[str] | None = None) -> str:
    """Store a new key (its hash) and return the key itself, which is never shown again."""
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}")
    key = new_key()
    session.add(ApiKey(name=name, role=role, key_sha256=hash_key(key), namespaces=namespaces or None,
                       created_at=utcnow()))
    return key


def find(session: Session, key: str) -> ApiKey | None:
    row = session.scalars(select(ApiKey).where(ApiKey.key_sha256 == hash_key(key))).one_or_none()
    return None if row is None or row.revoked_at is not None else row


def require(role: str, namespace: str | None = None) -> ApiKey:
    """The request's key, if it holds ``role`` (and may touch ``namespace``); else 401 / 403."""
    from .services import services
    scheme, _, key = (request.headers.get("Authorization") or "").partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        raise ApiError(401, "unauthenticated", "send Authorization: Bearer <API key>")
    with services().session() as session:
        row = find(session, key.strip())
        if row is None:
            raise ApiError(401, "unauthenticated", "unknown or revoked API key")
        session.expunge(row)
    if not allows(row.role, role):
        raise ApiError(403, "forbidden", f"this call needs the {role} role; the key {row.name} has {row.role}")
    if namespace is not None and row.namespaces is not None and namespace not in row.namespaces:
        raise ApiError(403, "forbidden", f"the key {row.name} may not touch namespace {namespace}")
    g.api_key = row
    return row
