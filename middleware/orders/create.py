"""Creating an order: the one place an order's columns, item rows, Kraty key scope and first history entries
are made.

Every way an order comes in goes through here: a store's purchase (``record.py``), a storefront's fulfil PUT
(``api/fulfil_orders.py``, created leased and already FULFILLING) and an import of past purchases
(``imports/order_rows.py``, which inserts the same values set-wise). ``new_order`` makes the order as ORM
objects (a store's purchase goes on to work on it in its session); ``new_order_rows`` makes the same values as
column values, for an INSERT on SQLAlchemy Core (``order_insert.py``: the PUT's one statement). The purchase
events an order emits come later, from the attempt that settles it (``purchase_events.py``); an imported order
emits none.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import inspect

from middleware.ledger import states
from middleware.ledger.models import Fulfilment, FulfilmentItem, HistoryEntry, utcnow
from middleware.orders.order_insert import column_values
from middleware.orders.lines import Resolved, build_items, request_hash

# the version an order is inserted with (the ORM's version counter starts there)
FIRST_VERSION = 1


def order_values(*, namespace: str, source: str, transaction_id: str, lines: list[dict], state: str,
                 now: datetime, created_at: datetime | None = None, **columns) -> dict:
    """An order's column values: its identity, lines and their hash, state and times; ``columns`` the rest."""
    return {"namespace": namespace, "source": source, "transaction_id": transaction_id, "state": state,
            "request_hash": request_hash(lines), "lines": lines, "created_at": created_at or now,
            "updated_at": now, "state_changed_at": now, **columns}


def entry_values(actor: str, at: datetime, from_state: str | None, to_state: str | None,
                 detail: dict | None = None) -> dict:
    """One history entry's column values."""
    return {"at": at, "actor": actor, "from_state": from_state, "to_state": to_state, "detail": detail}


def received_entry(actor: str, lines: list[dict], at: datetime, detail: dict | None = None) -> dict:
    """The first entry of an order that came in to be granted: received, with how many lines."""
    return entry_values(actor, at, None, states.RECEIVED, {"event": "received", "lines": len(lines), **(detail or {})})


def _entries(actor: str, lines: list[dict], now: datetime, detail: dict | None, state: str) -> list[dict]:
    """A new order's first history entries: received and, when it starts in another state, that transition."""
    entries = [received_entry(actor, lines, now, detail)]
    if state != states.RECEIVED:
        entries.append(entry_values(actor, now, states.RECEIVED, state))
    return entries


def item_values(items: list[FulfilmentItem]) -> list[dict]:
    """Item rows (``build_items``, not yet added to a session) as the column values an INSERT writes: what each
    row sets, else the column's default; without the row id and, None, the order's id."""
    return [column_values(FulfilmentItem.__table__, inspect(item).dict) for item in items]


@dataclass
class NewOrder:
    """A new order as column values: the order's (every column), its item rows' and history entries' (every
    column but their own id and the order's)."""
    order: dict
    items: list[dict]
    history: list[dict]


def new_order_rows(*, namespace: str, source: str, transaction_id: str, lines: list[dict], resolved: list[Resolved],
                   actor: str, detail: dict | None = None, state: str = states.RECEIVED, now: datetime | None = None,
                   **columns) -> NewOrder:
    """``new_order``'s values, for a Core INSERT."""
    now = now or utcnow()
    order = order_values(namespace=namespace, source=source, transaction_id=transaction_id, lines=lines,
                         state=state, now=now, **columns)
    return NewOrder(column_values(Fulfilment.__table__, {**order, "version": FIRST_VERSION}),
                    item_values(build_items(resolved, now)), _entries(actor, lines, now, detail, state))


def new_order(*, namespace: str, source: str, transaction_id: str, lines: list[dict], resolved: list[Resolved],
              actor: str, detail: dict | None = None, state: str = states.RECEIVED, now: datetime | None = None,
              **columns) -> Fulfilment:
    """A new order (not yet added to a session): its item rows from the resolved lines, received in its history
    and, when it starts in another state (a storefront's PUT starts FULFILLING), that transition too."""
    now = now or utcnow()
    f = Fulfilment(**order_values(namespace=namespace, source=source, transaction_id=transaction_id, lines=lines,
                                  state=state, now=now, **columns),
                   items=build_items(resolved, now))
    f.history.extend(HistoryEntry(**entry) for entry in _entries(actor, lines, now, detail, state))
    return f
