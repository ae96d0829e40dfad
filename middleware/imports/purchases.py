"""Past purchases recorded as orders **granted elsewhere**: the studio's previous system gave the goods, so Kraty
is not called for them — but from then on they are orders like any other.

An imported order is ``FULFILLED`` (``REVOKED`` when it was refunded before the move) with every item row
``GRANTED`` (``REVOKED``), its ``reason`` and its first history entry saying it was granted elsewhere. Hence:

- the reconciler never touches it (neither state is active) and no attempt ever grants it: a fulfil attempt
  only takes RECEIVED / FULFILLING orders, and a revoke attempt only grants rows still PENDING (none here);
- a store's refund finds it through the payment refs recorded with it (the transaction id, Stripe's
  PaymentIntent and charge) and takes the goods back in Kraty through the normal path, with the normal stable
  keys (``<source>:<transaction>:<line>.<component>:revoke:0``), although the bridge never granted them;
- a notification or receipt for the same transaction finds the order (same key, or same payment) and grants
  nothing; a receipt naming another player is refused (``purchases.OtherPlayer``).

Each batch (≤ 1,000 rows) is written in one transaction with a few set-wise statements; a row already present
is skipped, and if the batch cannot be written (a row the database refuses) its rows are written one at a time,
so a bad row fails alone. Payment refs are locked in a fixed order before the orders are written — the same
lock a live purchase or refund takes — so an import running beside live traffic never makes one payment two
orders.
"""
from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field

from sqlalchemy import bindparam, select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from config.catalog import Game

from .. import actions
from ..ledger import repository as repo
from ..ledger import states
from ..ledger.models import (Fulfilment, FulfilmentItem, HistoryEntry, PaymentRef, PlayerLink, Reversal, new_id,
                             utcnow)
from ..orders import Resolved, item_rows, request_hash, resolve_line
from ..services import Services
from .files import BadLine
from .rows import REFUNDED, RowError, canonical

log = logging.getLogger(__name__)

APPLIED, SKIPPED, FAILED = "applied", "skipped", "failed"
GRANTED_ELSEWHERE = "granted elsewhere: imported from the studio's previous system; Kraty was not called"
REFUNDED_ELSEWHERE = "refunded elsewhere: imported as granted and taken back by the studio's previous system"
ITEM_COLUMNS = [column.key for column in FulfilmentItem.__table__.columns if column.key != "id"]


@dataclass
class RowResult:
    row: int
    status: str
    transaction_id: str | None = None
    order_id: str | None = None
    reason: str | None = None

    def as_dict(self) -> dict:
        out = {"row": self.row, "status": self.status, "transactionId": self.transaction_id}
        if self.order_id:
            out["orderId"] = self.order_id
        if self.reason:
            out["reason"] = self.reason
        return out


@dataclass
class _Order:
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


def _prepare(game: Game, number: int, row: dict) -> _Order:
    if row["environment"] == "sandbox" and not game.allow_sandbox:
        raise RowError(f"a sandbox purchase, and game {game.namespace} does not take sandbox purchases")
    line = ({"itemSku": row["sku"], "quantity": row["quantity"]} if "sku" in row
            else {"store": row["store"], "product": row["product_id"], "quantity": row["quantity"]})
    resolved = resolve_line(game, line)
    if resolved.error_code:
        raise RowError(f"{resolved.error_code}: {resolved.error}")
    txn, store = row["transaction_id"], row["store"]
    refs = list(dict.fromkeys(value for value in (txn, row.get("payment_intent"), row.get("charge")) if value))
    keys, player_key = [], None
    if store == "app_store":
        keys = [("transaction", txn)] + ([("original_transaction", row["original_transaction_id"])]
                                         if row.get("original_transaction_id") else [])
        player_key = row.get("original_transaction_id") or txn
    elif store == "google_play" and row.get("purchase_token"):
        keys, player_key = [("purchase_token", row["purchase_token"])], row["purchase_token"]
    return _Order(number, row, resolved, refs, keys, player_key)


def import_rows(services: Services, game: Game, raw_rows: Iterable[tuple[int, object]], fmt: str, *,
                dry_run: bool = False, actor: str = "import") -> list[RowResult]:
    """Import one batch (≤ 1,000 rows) of ``(row number, raw row)``; one result per row, in row order."""
    results: dict[int, RowResult] = {}
    todo: list[_Order] = []
    claimed: dict[tuple[str, str], _Order] = {}
    for number, raw in raw_rows:
        try:
            if isinstance(raw, BadLine):
                raise RowError(raw.problem)
            order = _prepare(game, number, canonical(raw, fmt))
        except RowError as exc:
            txn = raw.get("transaction_id") or raw.get("store_transaction_id") if isinstance(raw, dict) else None
            results[number] = RowResult(number, FAILED, txn if isinstance(txn, str) else None, reason=str(exc))
            continue
        earlier = next((claimed[(order.source, ref)] for ref in [order.txn, *order.refs]
                        if (order.source, ref) in claimed), None)
        if earlier is not None:
            results[number] = _repeat(order, earlier)
            continue
        for ref in [order.txn, *order.refs]:
            claimed[(order.source, ref)] = order
        todo.append(order)
    results.update(_write_or_split(services, game, todo, dry_run, actor))
    return [results[number] for number in sorted(results)]


def _repeat(order: _Order, earlier: _Order) -> RowResult:
    if earlier.row["player_id"] != order.row["player_id"]:
        return RowResult(order.number, FAILED, order.txn, reason=f"row {earlier.number} has this purchase for "
                                                                 "another player")
    return RowResult(order.number, SKIPPED, order.txn, reason=f"already present: row {earlier.number} has it")


def _write_or_split(services: Services, game: Game, todo: list[_Order], dry_run: bool,
                    actor: str) -> dict[int, RowResult]:
    if not todo:
        return {}
    try:
        return _write(services, game, todo, dry_run, actor)
    except SQLAlchemyError as exc:
        if _unreachable(exc):
            raise  # the database is down, not refusing a row: the caller stops (503, or the CLI's one-line error)
        if len(todo) == 1:
            order = todo[0]
            reason = (str(getattr(exc, "orig", None) or exc).strip().splitlines() or ["database error"])[0]
            log.warning("import row %d (%s) refused by the database: %s", order.number, order.txn, reason)
            return {order.number: RowResult(order.number, FAILED, order.txn, reason=f"not stored: {reason}")}
        out: dict[int, RowResult] = {}
        for order in todo:  # one at a time: the row the database refuses fails alone
            out.update(_write_or_split(services, game, [order], dry_run, actor))
        return out


def _unreachable(exc: SQLAlchemyError) -> bool:
    """A lost or refused connection: no SQLSTATE (a deadlock, a constraint, bad data all have one)."""
    if getattr(exc, "connection_invalidated", False):
        return True
    orig = getattr(exc, "orig", None)
    return type(orig).__name__ in ("OperationalError", "InterfaceError") and getattr(orig, "sqlstate", "") is None


def _existing(session: Session, namespace: str, todo: list[_Order]) -> dict[tuple[str, str], tuple[str, str]]:
    """(source, transaction id) -> (order id, player) of the orders already in the ledger."""
    found = {}
    for source in {order.source for order in todo}:
        txns = [order.txn for order in todo if order.source == source]
        rows = session.execute(select(Fulfilment.transaction_id, Fulfilment.id, Fulfilment.player_id).where(
            Fulfilment.namespace == namespace, Fulfilment.source == source, Fulfilment.transaction_id.in_(txns)))
        found.update({(source, txn): (fid, player) for txn, fid, player in rows})
    return found


def _lock_refs(session: Session, todo: list[_Order], dry_run: bool) -> dict[tuple[str, str], PaymentRef]:
    """Every row's payment refs, inserted where absent and locked (in one order: imports never deadlock)."""
    wanted = sorted({(order.source, ref) for order in todo for ref in order.refs})
    if not dry_run:
        now = utcnow()
        insert = repo.dialect_insert(session)
        session.execute(insert(PaymentRef).on_conflict_do_nothing(index_elements=["source", "ref"]),
                        [{"source": source, "ref": ref, "created_at": now} for source, ref in wanted])
    locked = {}
    for source in {source for source, _ in wanted}:
        refs = [ref for s, ref in wanted if s == source]
        query = (select(PaymentRef).where(PaymentRef.source == source, PaymentRef.ref.in_(refs))
                 .order_by(PaymentRef.ref))
        for row in session.scalars(query if dry_run else query.with_for_update()):
            locked[(source, row.ref)] = row
    return locked


def _decide(order: _Order, existing: dict, locked: dict, players: dict) -> RowResult | None:
    """The row's result when it is already in the ledger (or its payment is), else None: it is to be written."""
    found = existing.get((order.source, order.txn))
    if found is None:
        taken = next((locked[(order.source, ref)] for ref in order.refs
                      if (order.source, ref) in locked and locked[(order.source, ref)].fulfilment_id), None)
        if taken is None:
            return None
        found = (taken.fulfilment_id, players.get(taken.fulfilment_id))
    fid, player = found
    if player not in (None, order.row["player_id"]):
        return RowResult(order.number, FAILED, order.txn, fid, "already present for another player")
    return RowResult(order.number, SKIPPED, order.txn, fid, "already present")


def _write(services: Services, game: Game, todo: list[_Order], dry_run: bool, actor: str) -> dict[int, RowResult]:
    results: dict[int, RowResult] = {}
    to_reverse: list[str] = []
    with services.session() as session:
        existing = _existing(session, game.namespace, todo)
        locked = _lock_refs(session, todo, dry_run)
        linked = [ref.fulfilment_id for ref in locked.values() if ref.fulfilment_id]
        players = dict(session.execute(select(Fulfilment.id, Fulfilment.player_id)
                                       .where(Fulfilment.id.in_(linked))).all()) if linked else {}
        fresh = []
        for order in todo:
            decided = _decide(order, existing, locked, players)
            if decided is not None:
                results[order.number] = decided
            else:
                fresh.append(order)
        if dry_run:
            session.rollback()
            results.update({o.number: RowResult(o.number, APPLIED, o.txn, reason="dry run: nothing written")
                            for o in fresh})
            return results
        written = _insert_orders(session, game, fresh, actor)
        for order in fresh:
            if order.id not in written:  # recorded meanwhile by live traffic
                results[order.number] = RowResult(order.number, SKIPPED, order.txn, reason="already present")
        done = [order for order in fresh if order.id in written]
        to_reverse = _link_refs(session, done, locked)
        _link_players(session, game.namespace, done)
        session.commit()
    results.update({o.number: RowResult(o.number, APPLIED, o.txn, o.id) for o in done})
    for fulfilment_id in to_reverse:  # a refund that came before the import: applied now, like a live purchase's
        actions.run(services, fulfilment_id, actor, actions.REVERSE)
    return results


def _insert_orders(session: Session, game: Game, orders: list[_Order], actor: str) -> set[str]:
    """Insert the orders (ON CONFLICT DO NOTHING), then the rows and history of those inserted; their ids."""
    if not orders:
        return set()
    now = utcnow()
    insert = repo.dialect_insert(session)
    table = Fulfilment.__table__
    # executemany without RETURNING: one short statement the driver prepares once (a multi-row VALUES with
    # RETURNING costs more to build and parse than to run); then which of our new ids are there
    session.execute(insert(table).on_conflict_do_nothing(index_elements=["namespace", "source", "transaction_id"]),
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


def _refunded(order: _Order) -> bool:
    return order.row["state"] == REFUNDED


def _order_values(game: Game, order: _Order, now) -> dict:
    row = order.row
    lines = [order.resolved.line]
    return {"id": order.id, "namespace": game.namespace, "source": order.source, "transaction_id": order.txn,
            "player_id": row["player_id"], "environment": row["environment"],
            "state": states.REVOKED if _refunded(order) else states.FULFILLED,
            "reason": REFUNDED_ELSEWHERE if _refunded(order) else GRANTED_ELSEWHERE,
            "request_hash": request_hash(lines), "lines": lines, "attempts": 0, "next_attempt_at": None,
            "lease_owner": None, "lease_until": None, "reversal_seq": 0, "lookup": None, "attention": None,
            "player_key": order.player_key, "followup": None, "followup_state": None, "followup_attempts": 0,
            "followup_at": None, "price": _price(row.get("price")), "currency": row.get("currency"), "version": 1,
            "created_at": row["purchased_at"], "updated_at": now, "state_changed_at": now}


def _price(price) -> str | None:
    return None if price is None else str(price)


def _item_values(order: _Order, now, templates: dict[str, list[dict]]) -> list[dict]:
    """The order's item rows as column values; the rows of one line (SKU, quantity) are built once a batch."""
    key = request_hash([order.resolved.line])
    if key not in templates:
        templates[key] = [{k: getattr(item, k) for k in ITEM_COLUMNS} for item in item_rows(0, order.resolved)]
    refunded = _refunded(order)
    return [{**template, "fulfilment_id": order.id, "order_created_at": order.row["purchased_at"], "cycle": 0,
             "revoke_to": None, "updated_at": now, "idempotency_key": None,
             "state": states.ITEM_REVOKED if refunded else states.ITEM_GRANTED,
             "revoked_amount": template["amount"] if refunded else 0} for template in templates[key]]


def _history(order: _Order, actor: str, now) -> list[dict]:
    row = order.row
    ids = {key: row[key] for key in ("original_transaction_id", "purchase_token", "order_id", "payment_intent",
                                     "charge") if row.get(key)}
    detail = {"event": "imported", "granted_elsewhere": True, "purchased_at": row["purchased_at"].isoformat(),
              "lines": 1, **ids}
    entries = [{"fulfilment_id": order.id, "at": now, "actor": actor, "from_state": None,
                "to_state": states.FULFILLED, "detail": detail}]
    if _refunded(order):
        entries.append({"fulfilment_id": order.id, "at": now, "actor": actor, "from_state": states.FULFILLED,
                        "to_state": states.REVOKED, "detail": {"event": "imported", "refunded_elsewhere": True}})
    return entries


def _link_refs(session: Session, done: list[_Order], locked: dict) -> list[str]:
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


def _link_players(session: Session, namespace: str, done: list[_Order]) -> None:
    """Link the purchases' store ids to their players, as a receipt would (a later notification finds them)."""
    now = utcnow()
    values = [{"namespace": namespace, "source": o.source, "kind": kind, "value": value,
               "player_id": o.row["player_id"], "created_at": now} for o in done for kind, value in o.keys]
    if values:
        insert = repo.dialect_insert(session)
        session.execute(insert(PlayerLink).on_conflict_do_nothing(index_elements=["source", "kind", "value"]),
                        values)
