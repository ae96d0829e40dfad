"""SQLAlchemy 2 models of the ledger. Portable between PostgreSQL (psycopg 3) and SQLite.

The models live by area (``order_models``, ``sink_models``, ``ops_models``, on ``model_base``); this module
imports them all, so ``Base.metadata`` knows every table, and is where callers import them from."""
from __future__ import annotations

from middleware.ledger.model_base import Base, BigId, UTCDateTime, new_id, utcnow
from middleware.ledger.ops_models import ApiKey, AuditEntry, ConsoleSession, Erasure
from middleware.ledger.order_models import (
    Fulfilment,
    FulfilmentItem,
    HistoryEntry,
    InboundEvent,
    OutboxEntry,
    PaymentRef,
    PlayerLink,
    Reversal,
    StoreCursor,
)
from middleware.ledger.sink_models import Delivery, OutboundEvent, PlayerSequence, SinkState

__all__ = [
    "ApiKey", "AuditEntry", "Base", "ConsoleSession", "BigId", "Delivery", "Erasure", "Fulfilment", "FulfilmentItem", "HistoryEntry",
    "InboundEvent", "OutboundEvent", "OutboxEntry", "PaymentRef", "PlayerLink", "PlayerSequence", "Reversal", "SinkState",
    "StoreCursor", "UTCDateTime", "new_id", "table_names_children_first", "utcnow",
]


def table_names_children_first() -> list[str]:
    """Every ledger table, each before the tables it references (the order to empty them in)."""
    return [table.name for table in reversed(Base.metadata.sorted_tables)]
