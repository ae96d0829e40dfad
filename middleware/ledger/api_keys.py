"""API keys for our own ``/v1`` APIs: created by ``flask keys create``, shown once, kept as SHA-256.

Roles: ``receipts`` (the studio backend posting store receipts) and the ops ladder
``viewer`` < ``operator`` < ``admin``; ``admin`` may do everything. A key may be limited to
some games (namespaces). Missing or unknown key -> 401; a key too weak for the call -> 403.
"""
from __future__ import annotations

import hashlib
import re
import secrets
from datetime import datetime, timedelta

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from middleware.ledger.models import ApiKey, utcnow

OPS_LADDER = ("viewer", "operator", "admin")
ROLES = ("receipts", *OPS_LADDER)
PREFIX = "kb_"
LAST_USED_EVERY = timedelta(minutes=1)   # "last used" is written at most this often per key
_DURATION = re.compile(r"([1-9][0-9]{0,4})([mhdw])")
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def new_key() -> str:
    return PREFIX + secrets.token_urlsafe(32)


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def allows(have: str, need: str) -> bool:
    if have == need or have == "admin":
        return True
    return have in OPS_LADDER and need in OPS_LADDER and OPS_LADDER.index(have) >= OPS_LADDER.index(need)


def parse_duration(text: str) -> timedelta:
    """``90d``, ``12h``, ``30m``, ``2w`` -> a timedelta; ValueError for anything else."""
    match = _DURATION.fullmatch(text.strip())
    if not match:
        raise ValueError("a number and a unit: 30m, 12h, 90d or 2w")
    return timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})


def create(session: Session, name: str, role: str, namespaces: list[str] | None = None,
           expires_at: datetime | None = None) -> str:
    """Store a new key (its hash) and return the key itself, which is never shown again."""
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}")
    key = new_key()
    session.add(ApiKey(name=name, role=role, key_sha256=hash_key(key), namespaces=namespaces or None,
                       created_at=utcnow(), expires_at=expires_at))
    return key


def lookup(session: Session, key: str) -> tuple[ApiKey | None, str | None]:
    """The key's row if it may be used now, else None and why (unknown or revoked; expired, with when)."""
    row = session.scalars(select(ApiKey).where(ApiKey.key_sha256 == hash_key(key))).one_or_none()
    if row is None or row.revoked_at is not None:
        return None, "unknown or revoked API key"
    if row.expires_at is not None and row.expires_at <= utcnow():
        return None, f"the API key {row.name} expired at {row.expires_at.isoformat(timespec='seconds')}"
    return row, None


def find(session: Session, key: str) -> ApiKey | None:
    return lookup(session, key)[0]


def note_use(session: Session, row: ApiKey) -> None:
    """Record that ``row`` was used now, at most once a minute (one UPDATE then, none the rest of the time;
    the WHERE keeps concurrent requests from writing it twice)."""
    now = utcnow()
    if row.last_used_at is not None and now - row.last_used_at < LAST_USED_EVERY:
        return
    session.execute(update(ApiKey).where(ApiKey.id == row.id, or_(
        ApiKey.last_used_at.is_(None), ApiKey.last_used_at < now - LAST_USED_EVERY)).values(last_used_at=now))
    session.commit()
    row.last_used_at = now
