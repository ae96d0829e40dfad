"""Console sessions kept on the server (``console_sessions``): the signed cookie holds only a random token, the
row behind it says who is signed in. Signing out deletes the row, so the old cookie (or a copy of it) finds
nothing afterwards; a session also ends at its lifetime (``KB_CONSOLE_SESSION_HOURS``) or after
``KB_CONSOLE_IDLE_MINUTES`` without a request, and a key session when its key is revoked or expires.
"""
from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import delete
from sqlalchemy.orm import Session

from middleware.ledger import api_keys
from middleware.ledger.models import ApiKey, ConsoleSession, utcnow

SEEN_EVERY = timedelta(minutes=1)   # last_seen_at is written at most this often (the idle clock's resolution)
EXPIRED = "Your session has expired: sign in again."


@dataclass(frozen=True)
class SignedIn:
    """Who a live session is: what the console's actor and templates need."""

    session_id: str
    kind: str              # key | sso
    actor: str             # console:<key name> or sso:<email or subject>
    role: str
    namespaces: tuple[str, ...] | None
    name: str              # shown in the header
    email: str | None = None


def _id(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def start(db: Session, lifetime: timedelta, *, kind: str, actor: str, role: str, namespaces=None,
          api_key_id: int | None = None, subject: str | None = None, email: str | None = None) -> str:
    """Record a new session and return its token (for the cookie; only its hash is stored). Commits."""
    token = secrets.token_urlsafe(32)
    now = utcnow()
    db.add(ConsoleSession(id=_id(token), kind=kind, api_key_id=api_key_id, subject=subject, email=email,
                          actor=actor, role=role, namespaces=list(namespaces) if namespaces is not None else None,
                          created_at=now, last_seen_at=now, expires_at=now + lifetime))
    db.execute(delete(ConsoleSession).where(ConsoleSession.expires_at < now))   # sweep the long-dead ones
    db.commit()
    return token


def resume(db: Session, token: str, idle: timedelta) -> tuple[SignedIn | None, str | None]:
    """The live session of ``token``, or None and why it ended (ended sessions are deleted). Commits."""
    row = db.get(ConsoleSession, _id(token)) if isinstance(token, str) and token else None
    if row is None:
        return None, EXPIRED
    now = utcnow()
    ended = None
    if row.expires_at <= now:
        ended = EXPIRED
    elif now - row.last_seen_at >= idle:
        ended = "You were signed out after a while without activity: sign in again."
    name, role, namespaces = row.email or row.subject or row.actor, row.role, row.namespaces
    if ended is None and row.kind == "key":
        key = db.get(ApiKey, row.api_key_id)
        if key is None or key.revoked_at is not None:
            ended = "Your API key was revoked: sign in with another one."
        elif key.expires_at is not None and key.expires_at <= now:
            ended = "Your API key has expired: sign in with another one."
        elif not api_keys.allows(key.role, "viewer"):
            ended = f"The key {key.name} ({key.role}) cannot use the console."
        else:
            name, role, namespaces = key.name, key.role, key.namespaces   # the key's role as it is now
    if ended is not None:
        db.delete(row)
        db.commit()
        return None, ended
    if now - row.last_seen_at >= SEEN_EVERY:
        row.last_seen_at = now
        db.commit()
    namespaces = None if namespaces is None else tuple(namespaces)
    return SignedIn(row.id, row.kind, row.actor, role, namespaces, name, row.email), None


def end(db: Session, token: str | None) -> None:
    """Sign out: delete the session's row (the cookie's token then finds nothing). Commits."""
    if isinstance(token, str) and token:
        db.execute(delete(ConsoleSession).where(ConsoleSession.id == _id(token)))
        db.commit()
