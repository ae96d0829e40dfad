"""Inserting a new order on SQLAlchemy Core: the order, its item rows, its history entries and the inbound event
that brought it, committed together, without the ORM's unit of work (a storefront's fulfil PUT).

On PostgreSQL it is ONE statement with data-modifying CTEs::

    WITH new_order AS (INSERT INTO fulfilments ... ON CONFLICT (namespace, source, storefront, transaction_id)
                       DO NOTHING RETURNING *),
         items AS (INSERT INTO fulfilment_items SELECT new_order.id, <row 1> FROM new_order UNION ALL ... RETURNING *),
         history AS (INSERT INTO fulfilment_history SELECT new_order.id, <entry 1> FROM new_order UNION ALL ...),
         event AS (INSERT INTO inbound_events SELECT new_order.id, <the event> FROM new_order)
    SELECT new_order.*, items.* FROM new_order LEFT JOIN items ON true

Every part takes its order id from ``new_order``, so when the transaction id is already there nothing at all is
inserted and no row comes back. The history entries go in by one INSERT, in their order (their ids order an
order's history). SQLite takes the simple way: one INSERT per table in a transaction.

The values are ``create.new_order_rows``' (``create.py`` is where an order's values are made).
"""
from __future__ import annotations

from functools import lru_cache
from types import SimpleNamespace

from sqlalchemy import Table, bindparam, insert, select, true, union_all
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from middleware.ledger.models import Fulfilment, FulfilmentItem, HistoryEntry, InboundEvent
from middleware.orders import attempt_pg

F, I, H, E = Fulfilment.__table__, FulfilmentItem.__table__, HistoryEntry.__table__, InboundEvent.__table__
UNIQUE = ["namespace", "source", "storefront", "transaction_id"]


def column_values(table: Table, values: dict) -> dict:
    """Every column's value as an INSERT would write it: the given one, else the column's default (a scalar or
    a callable's value), else None; an autoincremented key is left to the database."""
    row = {}
    for column in table.columns:
        if column is table.autoincrement_column:
            continue
        if column.key in values:
            row[column.key] = values[column.key]
        elif column.default is not None and column.default.is_scalar:
            row[column.key] = column.default.arg
        elif column.default is not None and column.default.is_callable:
            row[column.key] = column.default.arg(None)
        else:
            row[column.key] = None
    return row


def _child_columns(table: Table) -> list[str]:
    """A child table's columns the insert binds (all but its own id and the order's)."""
    return [c.key for c in table.columns if c is not table.autoincrement_column and c.key != "fulfilment_id"]


def _rows_from(order, table: Table, prefix: str, count: int):
    """``count`` rows for ``table``, each the new order's id and the parameters ``<prefix><k>_<column>``."""
    columns = _child_columns(table)
    selects = [select(order.c.id, *[bindparam(f"{prefix}{k}_{name}", type_=table.c[name].type) for name in columns])
               for k in range(count)]
    return insert(table).from_select(["fulfilment_id", *columns], selects[0] if count == 1 else union_all(*selects))


@lru_cache(maxsize=16)
def pg_statement(items: int, entries: int):
    """The one statement for an order of ``items`` item rows and ``entries`` history entries (parameters
    ``o_<column>``, ``i<k>_<column>``, ``h<k>_<column>``, ``e_<column>``). Its rows are the order's columns and
    its items' (prefixed as ``attempt_pg.split_rows`` reads them), or none if the order was there already."""
    order = (postgresql.insert(F).values({c.key: bindparam(f"o_{c.key}", type_=c.type) for c in F.columns})
             .on_conflict_do_nothing(index_elements=UNIQUE).returning(*F.c).cte("new_order"))
    event_columns = _child_columns(E)
    event = insert(E).from_select(
        ["fulfilment_id", *event_columns],
        select(order.c.id, *[bindparam(f"e_{name}", type_=E.c[name].type) for name in event_columns])).cte("event")
    history = _rows_from(order, H, "h", entries).cte("history")
    statement = select(order)
    if items:
        rows = _rows_from(order, I, "i", items).returning(*I.c).cte("items")
        statement = (select(order, *[c.label(attempt_pg.ITEM_PREFIX + c.key) for c in rows.c])
                     .select_from(order.outerjoin(rows, true())).order_by(rows.c.line_no, rows.c.component_no))
    return statement.add_cte(history).add_cte(event)


def _pg_parameters(new, event: dict) -> dict:
    parameters = {f"o_{name}": value for name, value in new.order.items()}
    for prefix, rows in (("i", new.items), ("h", new.history)):
        for k, row in enumerate(rows):
            parameters.update({f"{prefix}{k}_{name}": value for name, value in row.items() if name != "fulfilment_id"})
    parameters.update({f"e_{name}": value for name, value in event.items() if name != "fulfilment_id"})
    return parameters


def insert_order(connection: Connection, new, event: dict) -> SimpleNamespace | None:
    """Insert ``new`` (``create.NewOrder``) with its inbound ``event`` (InboundEvent's columns but the order id)
    and commit; the order as inserted (its columns, ``items`` its item rows', in line and component order), or
    None — nothing inserted, rolled back — if the transaction id is there already."""
    event = column_values(E, event)
    if connection.dialect.name == "postgresql":
        rows = connection.execute(pg_statement(len(new.items), len(new.history)), _pg_parameters(new, event))
        if new.items:
            order, items = attempt_pg.split_rows(rows)
        else:  # an order without item rows (each line resolved to nothing to grant): the order's row alone
            row = rows.first()
            order, items = None if row is None else dict(row._mapping), []
    else:
        order, items = _sqlite_insert(connection, new, event)
    if order is None:
        connection.rollback()
        return None
    connection.commit()
    f = SimpleNamespace(**order)
    f.items = [SimpleNamespace(**item) for item in items]
    return f


def _sqlite_insert(connection: Connection, new, event: dict) -> tuple[dict | None, list[dict]]:
    fulfilment_id = new.order["id"]
    inserted = connection.execute(sqlite.insert(F).on_conflict_do_nothing(index_elements=UNIQUE), new.order)
    if inserted.rowcount != 1:
        return None, []
    for table, rows in ((I, new.items), (H, new.history)):
        if rows:
            connection.execute(insert(table), [{**row, "fulfilment_id": fulfilment_id} for row in rows])
    connection.execute(insert(E), {**event, "fulfilment_id": fulfilment_id})
    items = connection.execute(select(*I.c).where(I.c.fulfilment_id == fulfilment_id)
                               .order_by(I.c.line_no, I.c.component_no))
    return dict(new.order), [dict(row._mapping) for row in items]
