"""API keys for our own ``/v1`` APIs: created by ``flask keys create``, shown once, kept as SHA-256.

Roles: ``receipts`` (the studio backend posting store receipts) and the ops ladder
``viewer`` < ``operator`` < ``admin``; ``admin`` may do everything. A key may be limited to
some games (namespaces). Missing or unknown key -> 401; a key too weak for the call -> 403.
"""
from __future__ import annotations

import hashlib
import secrets

from sqlalchemy import select
from sqlalchemy.orm import Session

from middleware.ledger.models import ApiKey, utcnow

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
