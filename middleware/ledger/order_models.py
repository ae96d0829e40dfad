"""The ledger's order rows: inbound events, orders (``Fulfilment``) with their items and history, payment
references, reversals, player links and the stores' backfill cursors."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    event,
    inspect,
    select,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from middleware.ledger import states

from middleware.ledger.model_base import BigId, Base, UTCDateTime, new_id, utcnow


class InboundEvent(Base):
    """Every request a store (or Kraty) made us, raw body kept for audit and replay."""

    __tablename__ = "inbound_events"
    __table_args__ = (UniqueConstraint("source", "provider_event_id", name="uq_inbound_source_event"),
                      Index("ix_inbound_outcome_received", "outcome", "received_at"))

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    source: Mapped[str] = mapped_column(String(32))
    provider_event_id: Mapped[str] = mapped_column(String(255))
    namespace: Mapped[str | None] = mapped_column(String(64))
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    content_type: Mapped[str | None] = mapped_column(String(128))
    raw_body: Mapped[bytes] = mapped_column(LargeBinary)
    # recorded (handled as it came in) | pending (a job is to handle it) | processed | ignored | failed
    outcome: Mapped[str] = mapped_column(String(32), default="recorded")
    detail: Mapped[str | None] = mapped_column(Text)
    event_type: Mapped[str | None] = mapped_column(String(128))
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")  # of the job handling it
    attempted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    fulfilment_id: Mapped[str | None] = mapped_column(ForeignKey("fulfilments.id"), index=True)
    # the player a Kraty webhook names (data.externalPlayerId), so erasure and export find its events
    player_id: Mapped[str | None] = mapped_column(String(255), index=True)


class OutboxEntry(Base):
    """Work to put on the queue, committed with the change that made it (the transactional outbox): a store
    event's ``event`` job, inserted with the event. ``workers/relay.py`` moves the rows to RQ in batches and
    deletes them (``workers/queues.relay_outbox``); woken by PostgreSQL's NOTIFY, and by its own poll."""

    __tablename__ = "outbox"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    job: Mapped[str] = mapped_column(String(32))           # "event": its source's job, workers.events.<source>(ref)
    ref: Mapped[str] = mapped_column(String(64))           # the job's argument (the inbound event's id)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    trace: Mapped[str | None] = mapped_column(Text)        # the request's trace context (JSON), tracing on


# the active orders, as SQL with the states written out (a partial index's predicate, and the stuck orders' count
# with the same text so the planner can match them; bound parameters would not match)
ACTIVE_SQL = "state IN (%s)" % ", ".join(f"'{state}'" for state in states.ACTIVE)


class Fulfilment(Base):
    """One paid order, unique per (namespace, source, storefront, transaction id); storefront "" for a store's."""

    __tablename__ = "fulfilments"
    __table_args__ = (
        UniqueConstraint("namespace", "source", "storefront", "transaction_id", name="uq_fulfilment_txn"),
        Index("ix_fulfilments_state_updated", "state", "updated_at"),
        # the ops query (newest first, keyset on (created_at, id)): one index per filter
        Index("ix_fulfilments_created", "created_at", "id"),
        Index("ix_fulfilments_ns_created", "namespace", "created_at", "id"),
        Index("ix_fulfilments_player_created", "player_id", "created_at", "id"),
        Index("ix_fulfilments_source_created", "source", "created_at", "id"),
        Index("ix_fulfilments_state_created", "state", "created_at", "id"),
        Index("ix_fulfilments_env_created", "environment", "created_at", "id"),
        Index("ix_fulfilments_txn", "transaction_id"),
        # search (migrations 0009, 0011): a player id prefix and the players' games; the flagged and the stuck
        # orders the home page counts (the partial index's predicate is the one middleware.ops.needs counts with)
        Index("ix_fulfilments_player_ns", "player_id", "namespace", postgresql_ops={"player_id": "text_pattern_ops"}),
        Index("ix_fulfilments_stuck", "state_changed_at", postgresql_where=text(ACTIVE_SQL),
              sqlite_where=text(ACTIVE_SQL)),
        Index("ix_fulfilments_flagged", "created_at", "id", postgresql_where=text("attention IS NOT NULL"),
              sqlite_where=text("attention IS NOT NULL")),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    namespace: Mapped[str] = mapped_column(String(64))
    source: Mapped[str] = mapped_column(String(32))
    transaction_id: Mapped[str] = mapped_column(String(255))
    # the third-party storefront (AccelByte-compatible API) that created the order, the only one that sees and
    # touches it; "" for a store's own orders. Transaction ids are unique per storefront.
    storefront: Mapped[str] = mapped_column(String(64), default="", server_default="")
    # what the order's Kraty idempotency keys are scoped by besides source and transaction id (its storefront);
    # None: the keys of orders recorded before 0007, which stay as they were (see orders.key_source)
    key_scope: Mapped[str | None] = mapped_column(String(64))
    player_id: Mapped[str | None] = mapped_column(String(255))
    environment: Mapped[str] = mapped_column(String(16), default="production")  # production | sandbox
    state: Mapped[str] = mapped_column(String(20), default=states.RECEIVED)
    reason: Mapped[str | None] = mapped_column(Text)
    request_hash: Mapped[str] = mapped_column(String(64))   # canonical order lines, to spot a changed payload
    lines: Mapped[list] = mapped_column(JSON)               # the order lines as the store sent them
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    lease_owner: Mapped[str | None] = mapped_column(String(64))
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    reversal_seq: Mapped[int] = mapped_column(Integer, default=0)
    # what must be fetched from the store before the lines are known (e.g. "stripe:checkout_session")
    lookup: Mapped[str | None] = mapped_column(String(64))
    attention: Mapped[str | None] = mapped_column(Text)  # why ops should look at this order (partial refund...)
    # a store id through which a studio's receipt can name the player later (App Store original transaction...)
    player_key: Mapped[str | None] = mapped_column(String(255), index=True)
    # what the store must be told once the order is granted (Google Play: consume / acknowledge)
    followup: Mapped[str | None] = mapped_column(String(255))
    followup_state: Mapped[str | None] = mapped_column(String(16))  # pending | done | failed
    followup_attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    followup_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # next try
    # what was paid, where the store says: a decimal in major units ("4.99") and the ISO 4217 code ("USD")
    price: Mapped[str | None] = mapped_column(String(32))
    currency: Mapped[str | None] = mapped_column(String(8))
    version: Mapped[int] = mapped_column(Integer)  # optimistic lock: a stale writer fails instead of overwriting
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    state_changed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)  # retries are bounded from here

    items: Mapped[list["FulfilmentItem"]] = relationship(
        back_populates="fulfilment", order_by="(FulfilmentItem.line_no, FulfilmentItem.component_no)",
        cascade="all, delete-orphan")
    history: Mapped[list["HistoryEntry"]] = relationship(
        back_populates="fulfilment", order_by="HistoryEntry.id", cascade="all, delete-orphan")

    __mapper_args__ = {"version_id_col": version}


class FulfilmentItem(Base):
    """One Kraty grant component of one order line: the unit of idempotency and retry."""

    __tablename__ = "fulfilment_items"
    __table_args__ = (UniqueConstraint("fulfilment_id", "line_no", "component_no", name="uq_item_component"),
                      # the ops query's SKU filter: the orders of a SKU newest first, keyset on (created_at, id)
                      Index("ix_items_sku_created", "sku", "order_created_at", "fulfilment_id"))

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    fulfilment_id: Mapped[str] = mapped_column(ForeignKey("fulfilments.id"), index=True)
    line_no: Mapped[int] = mapped_column(Integer)
    component_no: Mapped[int] = mapped_column(Integer)
    sku: Mapped[str | None] = mapped_column(String(128))          # the order line's product
    item_id: Mapped[str | None] = mapped_column(String(128))
    item_type: Mapped[str | None] = mapped_column(String(32))
    line_quantity: Mapped[int] = mapped_column(Integer)
    component_sku: Mapped[str | None] = mapped_column(String(128))  # bundle member (or the product itself)
    component_item_id: Mapped[str | None] = mapped_column(String(128))
    component_quantity: Mapped[int] = mapped_column(BigInteger)     # units of the component in this line
    kind: Mapped[str | None] = mapped_column(String(16))            # currency | item | None (nothing to grant)
    target: Mapped[str | None] = mapped_column(String(64))          # currency key or item key
    amount: Mapped[int] = mapped_column(BigInteger, default=0)      # total amount / quantity for this row
    # of ``amount``, how much the player does not hold because of take-backs (taken back, or never granted)
    revoked_amount: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    revoke_to: Mapped[int | None] = mapped_column(BigInteger)      # take-back target while revoking (None: all)
    state: Mapped[str] = mapped_column(String(20), default=states.ITEM_PENDING)
    error_code: Mapped[str | None] = mapped_column(String(64))
    error: Mapped[str | None] = mapped_column(Text)
    cycle: Mapped[int] = mapped_column(Integer, default=0)          # grant/revoke cycle (reversal sequence)
    idempotency_key: Mapped[str | None] = mapped_column(String(400))
    kraty_entry_id: Mapped[str | None] = mapped_column(String(128))
    revoke_entry_id: Mapped[str | None] = mapped_column(String(128))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # the order's created_at, copied (it never changes) so the SKU filter pages through one index; set by
    # build_items' callers or, when left unset, from the order as the row is inserted (_copy_order_created_at)
    order_created_at: Mapped[datetime] = mapped_column(UTCDateTime)

    fulfilment: Mapped[Fulfilment] = relationship(back_populates="items")


@event.listens_for(FulfilmentItem, "before_insert")
def _copy_order_created_at(mapper, connection, item: FulfilmentItem) -> None:
    """An item row inserted without its order's created_at gets it from the order (inserted before it)."""
    if item.order_created_at is not None:
        return
    order = inspect(item).attrs.fulfilment.loaded_value   # no lazy load inside a flush
    created = getattr(order, "created_at", None)
    if created is None:   # a row added by fulfilment_id alone: the order is in the database
        created = connection.scalar(select(Fulfilment.created_at).where(Fulfilment.id == item.fulfilment_id))
    item.order_created_at = created


class HistoryEntry(Base):
    """Append-only: every transition and every notable thing that happened to a fulfilment."""

    __tablename__ = "fulfilment_history"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    fulfilment_id: Mapped[str] = mapped_column(ForeignKey("fulfilments.id"), index=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    actor: Mapped[str] = mapped_column(String(128))
    from_state: Mapped[str | None] = mapped_column(String(20))
    to_state: Mapped[str | None] = mapped_column(String(20))
    detail: Mapped[dict | None] = mapped_column(JSON)

    fulfilment: Mapped[Fulfilment] = relationship(back_populates="history")


class PaymentRef(Base):
    """A store's payment id (a Stripe PaymentIntent...) -> the order it paid for: how refunds and disputes,
    which name the payment, find the order, and how one payment is never fulfilled as two orders.
    A row without an order holds the place of a payment whose purchase has not arrived yet."""

    __tablename__ = "payment_refs"
    __table_args__ = (UniqueConstraint("source", "ref", name="uq_payment_ref"),
                      Index("ix_payment_refs_ref", "ref"))   # search: an id whatever its store

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    source: Mapped[str] = mapped_column(String(32))
    ref: Mapped[str] = mapped_column(String(255))
    fulfilment_id: Mapped[str | None] = mapped_column(ForeignKey("fulfilments.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Reversal(Base):
    """One take-back (or give-back) a store told us about: a refund, a dispute opened, won or lost.
    Unique per (source, reversal key), so each takes effect once; ``pending`` until applied to its order."""

    __tablename__ = "reversals"
    __table_args__ = (UniqueConstraint("source", "reversal_key", name="uq_reversal_key"),
                      Index("ix_reversals_ref", "source", "ref"),
                      Index("ix_reversals_state", "state", "created_at"))

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    source: Mapped[str] = mapped_column(String(32))
    reversal_key: Mapped[str] = mapped_column(String(255))
    ref: Mapped[str] = mapped_column(String(255))               # the payment it concerns (PaymentRef.ref)
    # the store's own id of the take-back (a Stripe refund re_…, a dispute dp_…), what a customer quotes
    store_ref: Mapped[str | None] = mapped_column(String(255), index=True)
    kind: Mapped[str] = mapped_column(String(32))               # refund | dispute_opened | dispute_lost | dispute_won
    amount: Mapped[int | None] = mapped_column(BigInteger)      # refunded so far (cumulative) / disputed
    total: Mapped[int | None] = mapped_column(BigInteger)       # what was paid
    currency: Mapped[str | None] = mapped_column(String(8))
    state: Mapped[str] = mapped_column(String(16), default="pending")  # pending | applied | ignored
    outcome: Mapped[str | None] = mapped_column(Text)          # what applying it did
    detail: Mapped[dict | None] = mapped_column(JSON)
    fulfilment_id: Mapped[str | None] = mapped_column(ForeignKey("fulfilments.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    applied_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class PlayerLink(Base):
    """What a studio backend told us about a store purchase's player (a transaction, a token...):
    how a notification that names no player finds one. Unique per (source, kind, value)."""

    __tablename__ = "player_links"
    __table_args__ = (UniqueConstraint("source", "kind", "value", name="uq_player_link"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    namespace: Mapped[str] = mapped_column(String(64))
    source: Mapped[str] = mapped_column(String(32))
    kind: Mapped[str] = mapped_column(String(32))      # transaction | original_transaction | account_token | ...
    value: Mapped[str] = mapped_column(String(255))
    player_id: Mapped[str] = mapped_column(String(255), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class StoreCursor(Base):
    """Where a periodic store poll got to (Google Play's voided purchases...), so it resumes there."""

    __tablename__ = "store_cursors"

    name: Mapped[str] = mapped_column(String(128), primary_key=True)
    value: Mapped[str] = mapped_column(String(255))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
