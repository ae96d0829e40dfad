"""The ledger's sink rows: outbound events, their deliveries to each sink, each sink's state and the per-player
sequence numbers of the events."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, BigInteger, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from middleware.ledger.model_base import Base, UTCDateTime, new_id, utcnow


class OutboundEvent(Base):
    """An event for the sinks (a purchase, a Kraty webhook...), kept once however many sinks receive it.
    ``player_seq`` numbers a player's events (per namespace) in the order they were recorded."""

    __tablename__ = "outbound_events"
    __table_args__ = (Index("ix_outbound_player_seq", "namespace", "player_id", "player_seq"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)  # evt_<hex>: the webhook-id receivers see
    type: Mapped[str] = mapped_column(String(128))
    namespace: Mapped[str] = mapped_column(String(64))
    player_id: Mapped[str | None] = mapped_column(String(255))
    environment: Mapped[str] = mapped_column(String(16), default="production")  # production | sandbox
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime)
    player_seq: Mapped[int | None] = mapped_column(BigInteger)
    payload: Mapped[dict] = mapped_column(JSON)
    fulfilment_id: Mapped[str | None] = mapped_column(String(32), index=True)  # the order it reports, if any
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Delivery(Base):
    """One event to one sink: pending -> delivered, or failed (a retry is scheduled) -> ... -> dead after the
    sink's last attempt; disabled when the sink was disabled (a 410). Unique per (event, sink)."""

    __tablename__ = "deliveries"
    __table_args__ = (UniqueConstraint("event_id", "sink", name="uq_delivery_event_sink"),
                      Index("ix_deliveries_state_next", "state", "next_attempt_at"),
                      Index("ix_deliveries_sink_state_created", "sink", "state", "created_at"))

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    event_id: Mapped[str] = mapped_column(ForeignKey("outbound_events.id"))
    sink: Mapped[str] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(16), default="pending")  # pending|delivered|failed|dead|disabled
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime)  # an attempt is sending until then
    last_status: Mapped[int | None] = mapped_column(Integer)           # the last HTTP status (None: no answer)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    event: Mapped[OutboundEvent] = relationship()


class SinkState(Base):
    """What happened to a configured sink at run time: disabled (its endpoint answered 410) and why."""

    __tablename__ = "sink_states"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    disabled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    reason: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class PlayerSequence(Base):
    """The last sequence number given to a player's outbound events (per namespace)."""

    __tablename__ = "player_sequences"

    namespace: Mapped[str] = mapped_column(String(64), primary_key=True)
    player_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    last_seq: Mapped[int] = mapped_column(BigInteger)
