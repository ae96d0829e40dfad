"""The ledger's access and ops rows: API keys, erasures (players' deletion requests) and the audit log."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Index, String, Text
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
