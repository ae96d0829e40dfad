"""The ledger rows of imported orders, written set-wise: orders, item rows, history, payment refs, player links.

See purchases.py for what an imported order is; these functions only write what it decided.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import bindparam, select, update
from sqlalchemy.orm import Session

from config.catalog import Game

from middleware.ledger import repository as repo
from middleware.ledger import states
from middleware.ledger.models import Fulfilment, FulfilmentItem, HistoryEntry, PaymentRef, PlayerLink, Reversal, new_id, utcnow
from middleware.orders import create
from middleware.orders.lines import Resolved, item_rows, request_hash
from middleware.imports.rows import REFUNDED

GRANTED_ELSEWHERE = "granted elsewhere: imported from the studio's previous system; Kraty was not called"
REFUNDED_ELSEWHERE = "refunded elsewhere: imported as granted and taken back by the studio's previous system"


@dataclass
class Order:
    """A valid row, ready to be written."""
    number: int
    row: dict
    resolved: Resolved
    refs: list[str]
    keys: list[tuple[str, str]]   # player links (kind, value)
    player_key: str | None
    id: str = field(default_factory=new_id)

    @property
    def source(self) -> str:
        return self.row["store"]

    @property
    def txn(self) -> str:
        return self.row["transaction_id"]


def insert_orders(session: Session, game: Game, orders: list[Order], actor: str) -> set[str]:
    """Insert the orders (ON CONFLICT DO NOTHING; a store's orders, so storefront ""), then the rows and history of
    those inserted; their ids."""
    if not orders:
        return set()
    now = utcnow()
    insert = repo.dialect_insert(session)
    table = Fulfilment.__table__
    # executemany without RETURNING: one short statement the driver prepares once (a multi-row VALUES with
    # RETURNING costs more to build and parse than to run); then which of our new ids are there
    session.execute(insert(table).on_conflict_do_nothing(index_elements=["namespace", "source", "storefront", "transaction_id"]),
                    [_order_values(game, o, now) for o in orders])
    written = set(session.scalars(select(table.c.id).where(table.c.id.in_([o.id for o in orders]))))
    orders = [o for o in orders if o.id in written]
    if not orders:
        return written
    templates: dict[str, list[dict]] = {}
    session.execute(FulfilmentItem.__table__.insert(),
                    [item for o in orders for item in _item_values(o, now, templates)])
    session.execute(HistoryEntry.__table__.insert(), [entry for o in orders for entry in _history(o, actor, now)])
    return written


def _refunded(order: Order) -> bool:
    return order.row["state"] == REFUNDED


def _order_values(game: Game, order: Order, now) -> dict:
    row = order.row
    return create.order_values(
        namespace=game.namespace, source=order.source, transaction_id=order.txn, lines=[order.resolved.line],
        state=states.REVOKED if _refunded(order) else states.FULFILLED, now=now, created_at=row["purchased_at"],
        id=order.id, player_id=row["player_id"], environment=row["environment"],
        reason=REFUNDED_ELSEWHERE if _refunded(order) else GRANTED_ELSEWHERE, attempts=0, next_attempt_at=None,
        lease_owner=None, lease_until=None, reversal_seq=0, lookup=None, attention=None,
        player_key=order.player_key, followup=None, followup_state=None, followup_attempts=0, followup_at=None,
        price=_price(row.get("price")), currency=row.get("currency"), version=1)


def _price(price) -> str | None:
    return None if price is None else str(price)


def _item_values(order: Order, now, templates: dict[str, list[dict]]) -> list[dict]:
    """The order's item rows as column values; the rows of one line (SKU, quantity) are built once a batch."""
    key = request_hash([order.resolved.line])
    if key not in templates:
        templates[key] = create.item_values(item_rows(0, order.resolved))
    refunded = _refunded(order)
    return [{**template, "fulfilment_id": order.id, "order_created_at": order.row["purchased_at"], "cycle": 0,
             "revoke_to": None, "updated_at": now, "idempotency_key": None,
             "state": states.ITEM_REVOKED if refunded else states.ITEM_GRANTED,
             "revoked_amount": template["amount"] if refunded else 0} for template in templates[key]]


def _history(order: Order, actor: str, now) -> list[dict]:
    row = order.row
    ids = {key: row[key] for key in ("original_transaction_id", "purchase_token", "order_id", "payment_intent",
                                     "charge") if row.get(key)}
    detail = {"event": "imported", "granted_elsewhere": True, "purchased_at": row["purchased_at"].isoformat(),
              "lines": 1, **ids}
    entries = [{"fulfilment_id": order.id, **create.entry_values(actor, now, None, states.FULFILLED, detail)}]
    if _refunded(order):
        entries.append({"fulfilment_id": order.id, **create.entry_values(
            actor, now, states.FULFILLED, states.REVOKED, {"event": "imported", "refunded_elsewhere": True})})
    return entries


def link_refs(session: Session, done: list[Order], locked: dict) -> list[str]:
    """Point the rows' payment refs at their new orders; orders with a refund waiting for them (a refund
    that came before the import) are returned, to be applied."""
    pairs = [(locked[(o.source, ref)].id, o.id) for o in done for ref in o.refs]
    if pairs:
        refs = PaymentRef.__table__
        session.execute(update(refs).where(refs.c.id == bindparam("ref_id")).values(fulfilment_id=bindparam("fid")),
                        [{"ref_id": ref_id, "fid": fid} for ref_id, fid in pairs])
    owner = {(o.source, ref): o.id for o in done for ref in o.refs}
    waiting = set()
    for source in {o.source for o in done}:
        refs = [ref for s, ref in owner if s == source]
        for reversal in session.scalars(select(Reversal).where(Reversal.source == source, Reversal.ref.in_(refs),
                                                               Reversal.fulfilment_id.is_(None))):
            reversal.fulfilment_id = owner[(source, reversal.ref)]
            waiting.add(reversal.fulfilment_id)
    return sorted(waiting)


def link_players(session: Session, namespace: str, done: list[Order]) -> None:
    """Link the purchases' store ids to their players, as a receipt would (a later notification finds them)."""
    now = utcnow()
    values = [{"namespace": namespace, "source": o.source, "kind": kind, "value": value,
               "player_id": o.row["player_id"], "created_at": now} for o in done for kind, value in o.keys]
    if values:
        insert = repo.dialect_insert(session)
        session.execute(insert(PlayerLink).on_conflict_do_nothing(index_elements=["source", "kind", "value"]),
                        values)
