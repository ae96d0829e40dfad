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
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from config.catalog import Game

from middleware.orders import actions
from middleware.ledger import repository as repo
from middleware.ledger.models import Fulfilment, PaymentRef, utcnow
from middleware.orders.lines import resolve_line
from middleware.services import Services
from middleware.imports.files import BadLine
from middleware.imports.order_rows import Order, insert_orders, link_players, link_refs
from middleware.imports.rows import RowError, canonical

log = logging.getLogger(__name__)

APPLIED, SKIPPED, FAILED = "applied", "skipped", "failed"


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


def _prepare(game: Game, number: int, row: dict) -> Order:
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
    return Order(number, row, resolved, refs, keys, player_key)


def import_rows(services: Services, game: Game, raw_rows: Iterable[tuple[int, object]], fmt: str, *,
                dry_run: bool = False, actor: str = "import") -> list[RowResult]:
    """Import one batch (≤ 1,000 rows) of ``(row number, raw row)``; one result per row, in row order."""
    results: dict[int, RowResult] = {}
    todo: list[Order] = []
    claimed: dict[tuple[str, str], Order] = {}
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


def _repeat(order: Order, earlier: Order) -> RowResult:
    if earlier.row["player_id"] != order.row["player_id"]:
        return RowResult(order.number, FAILED, order.txn, reason=f"row {earlier.number} has this purchase for "
                                                                 "another player")
    return RowResult(order.number, SKIPPED, order.txn, reason=f"already present: row {earlier.number} has it")


def _write_or_split(services: Services, game: Game, todo: list[Order], dry_run: bool,
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


def _existing(session: Session, namespace: str, todo: list[Order]) -> dict[tuple[str, str], tuple[str, str]]:
    """(source, transaction id) -> (order id, player) of the orders already in the ledger."""
    found = {}
    for source in {order.source for order in todo}:
        txns = [order.txn for order in todo if order.source == source]
        rows = session.execute(select(Fulfilment.transaction_id, Fulfilment.id, Fulfilment.player_id).where(
            Fulfilment.namespace == namespace, Fulfilment.source == source, Fulfilment.transaction_id.in_(txns)))
        found.update({(source, txn): (fid, player) for txn, fid, player in rows})
    return found


def _lock_refs(session: Session, todo: list[Order], dry_run: bool) -> dict[tuple[str, str], PaymentRef]:
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


def _decide(order: Order, existing: dict, locked: dict, players: dict) -> RowResult | None:
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


def _write(services: Services, game: Game, todo: list[Order], dry_run: bool, actor: str) -> dict[int, RowResult]:
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
        written = insert_orders(session, game, fresh, actor)
        for order in fresh:
            if order.id not in written:  # recorded meanwhile by live traffic
                results[order.number] = RowResult(order.number, SKIPPED, order.txn, reason="already present")
        done = [order for order in fresh if order.id in written]
        to_reverse = link_refs(session, done, locked)
        link_players(session, game.namespace, done)
        session.commit()
    results.update({o.number: RowResult(o.number, APPLIED, o.txn, o.id) for o in done})
    for fulfilment_id in to_reverse:  # a refund that came before the import: applied now, like a live purchase's
        actions.run(services, fulfilment_id, actor, actions.REVERSE)
    return results
