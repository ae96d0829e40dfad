"""The ledger's access and ops rows: API keys, erasures (players' deletion requests) and the audit log."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from middleware.ledger.model_base import BigId, Base, UTCDateTime, utcnow


class ApiKey(Base):
    """A key for our own ``/v1`` APIs: a name, a role, optionally the games it may touch; only its hash is kept."""

    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[str] = mapped_column(String(32))
    key_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    namespaces: Mapped[list | None] = mapped_column(JSON)  # None: every game
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)     # None: never
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)   # updated at most once a minute


class ConsoleSession(Base):
    """A signed-in console session, kept on the server: the cookie holds a random token whose hash is the id.
    Signing out deletes the row, so an old cookie replayed afterwards finds nothing. ``kind`` is ``key`` (signed
    in with an API key, ``api_key_id``) or ``sso`` (OpenID Connect: the person's ``subject`` and ``email``, the
    role and games mapped from their groups at sign-in)."""

    __tablename__ = "console_sessions"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)     # sha256 of the cookie's token
    kind: Mapped[str] = mapped_column(String(8))
    api_key_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("api_keys.id", ondelete="CASCADE"))
    subject: Mapped[str | None] = mapped_column(String(255))
    email: Mapped[str | None] = mapped_column(String(320))
    actor: Mapped[str] = mapped_column(String(128))                    # what audit rows name: sso:<email>...
    role: Mapped[str] = mapped_column(String(32))
    namespaces: Mapped[list | None] = mapped_column(JSON)               # None: every game
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)


class Erasure(Base):
    """A player erased after Kraty's ``player.deleted``: the placeholder their id became, and what changed.
    The original id is not kept (only its SHA-256, to recognise the same request again)."""

    __tablename__ = "erasures"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    namespace: Mapped[str] = mapped_column(String(64))
    player_sha256: Mapped[str] = mapped_column(String(64), index=True)
    placeholder: Mapped[str] = mapped_column(String(64))
    kraty_player_id: Mapped[str | None] = mapped_column(String(128))
    counts: Mapped[dict] = mapped_column(JSON)
    erased_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class AuditEntry(Base):
    """An ops action (retry, revoke, attach a player, make good, resolve, replay...): who, when, why, and the
    state before and after."""

    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_target", "target_type", "target_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    actor: Mapped[str] = mapped_column(String(128))        # key:<name>, cli:<user>...
    role: Mapped[str | None] = mapped_column(String(32))
    action: Mapped[str] = mapped_column(String(64))
    target_type: Mapped[str] = mapped_column(String(32))   # fulfilment | delivery | sink | player
    target_id: Mapped[str] = mapped_column(String(255))
    namespace: Mapped[str | None] = mapped_column(String(64))
    reason: Mapped[str | None] = mapped_column(Text)
    before: Mapped[dict | None] = mapped_column(JSON)
    after: Mapped[dict | None] = mapped_column(JSON)
    request_id: Mapped[str | None] = mapped_column(String(64))
    idempotency_key: Mapped[str | None] = mapped_column(String(255), unique=True)
