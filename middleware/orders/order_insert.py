"""Inserting a new order on SQLAlchemy Core: the order, its item rows, its history entries and the inbound event
that brought it, committed together, without the ORM's unit of work (a storefront's fulfil PUT).

On PostgreSQL it is ONE statement with data-modifying CTEs, prepared and autocommitted (``ledger/prepared.py``:
one round trip, no BEGIN or COMMIT), its rows given as JSON parameters::

    WITH new_order AS (INSERT INTO fulfilments SELECT ... FROM json_populate_record(NULL::fulfilments, :o)
                       ON CONFLICT (namespace, source, storefront, transaction_id) DO NOTHING RETURNING id),
         items AS (INSERT INTO fulfilment_items SELECT new_order.id, r.* FROM new_order,
                   json_populate_recordset(NULL::fulfilment_items, :i) WITH ORDINALITY r ... RETURNING id, ...),
         history AS (INSERT INTO fulfilment_history ... json_populate_recordset(..., :h) ...),
         event AS (INSERT INTO inbound_events SELECT new_order.id, <the event> FROM new_order)
    SELECT new_order.id, ARRAY(the items' ids in line and component order) FROM new_order

Every part takes its order id from ``new_order``, so when the transaction id is already there nothing at all is
inserted and no row comes back. The rows go in in their lists' order (the history entries' ids order an order's
history). The statement's text is the same for every order, short enough for psycopg to parse it once. What the
insert answers is the values it was given, with the ids the database gave the item rows. SQLite takes the simple
way: one INSERT per table in a transaction.

The values are ``create.new_order_rows``' (``create.py`` is where an order's values are made).
"""
from __future__ import annotations

from functools import lru_cache
from types import SimpleNamespace

from sqlalchemy import JSON, Table, insert, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from middleware.ledger import prepared
from middleware.ledger.models import Fulfilment, FulfilmentItem, HistoryEntry, InboundEvent
from middleware.ledger.prepared import Prepared, json_text

F, I, H, E = Fulfilment.__table__, FulfilmentItem.__table__, HistoryEntry.__table__, InboundEvent.__table__
DIALECT = postgresql.dialect()
UNIQUE = ["namespace", "source", "storefront", "transaction_id"]


def column_values(table: Table, values: dict) -> dict:
    """Every column's value as an INSERT would write it: the given one, else the column's default (a scalar or
    a callable's value), else None; an autoincremented key is left to the database."""
    row = {}
    for key, scalar, make in _defaults(table):
        if key in values:
            row[key] = values[key]
        else:
            row[key] = make(None) if make is not None else scalar
    return row


@lru_cache(maxsize=None)
def _defaults(table: Table) -> tuple[tuple[str, object, object], ...]:
    """(column, scalar default, callable default) for each column an INSERT writes, worked out once per table."""
    plan = []
    for column in table.columns:
        if column is table.autoincrement_column:
            continue
        default = column.default
        scalar = default.arg if default is not None and default.is_scalar else None
        make = default.arg if default is not None and default.is_callable else None
        plan.append((column.key, scalar, make))
    return tuple(plan)


def _child_columns(table: Table) -> list[str]:
    """A child table's columns the insert binds (all but its own id and the order's)."""
    return [c.key for c in table.columns if c is not table.autoincrement_column and c.key != "fulfilment_id"]


def _columns_sql(table: Table, prefix: str = "") -> str:
    return ", ".join(prefix + name for name in _child_columns(table))


@lru_cache(maxsize=None)
def _json_columns(table: Table) -> frozenset[str]:
    """A table's JSON columns: their values go in as parameters of their own, as the text they were given
    (reading a record out of JSON text turns its strings into text, which cannot hold every JSON string: NUL)."""
    return frozenset(c.key for c in table.columns if isinstance(c.type, JSON))


@lru_cache(maxsize=1)
def pg_statement() -> Prepared:
    """The one statement (parameters: ``o`` the order's columns, ``i`` its item rows', ``h`` its history
    entries', each one JSON parameter, and ``e_<column>`` the event's). Its row: the order's id and its items'
    ids in (line, component) order; no row if the order was there already. The JSON keeps the statement short
    and the same for every order (psycopg parses it once, PostgreSQL prepares it once)."""
    columns = ", ".join(c.key for c in F.columns)
    values = ", ".join(f"%(o_{c.key})s::json" if c.key in _json_columns(F) else c.key for c in F.columns)
    event_columns = _child_columns(E)

    def rows(table: Table, parameter: str) -> str:  # in the list's order (ids order an order's history)
        return (f"INSERT INTO {table.name} (fulfilment_id, {_columns_sql(table)}) SELECT new_order.id, "
                f"{_columns_sql(table, 'r.')} FROM new_order, json_populate_recordset(NULL::{table.name}, "
                f"%({parameter})s::json) WITH ORDINALITY AS r ORDER BY r.ordinality")
    return Prepared(
        f"WITH new_order AS (INSERT INTO {F.name} ({columns}) SELECT {values} FROM json_populate_record("
        f"NULL::{F.name}, %(o)s::json) ON CONFLICT ({', '.join(UNIQUE)}) DO NOTHING RETURNING id), "
        f"items AS ({rows(I, 'i')} RETURNING id, line_no, component_no), "
        f"history AS ({rows(H, 'h')}), "
        f"event AS (INSERT INTO {E.name} (fulfilment_id, {', '.join(event_columns)}) SELECT new_order.id, "
        f"{', '.join(f'%(e_{name})s::{E.c[name].type.compile(dialect=DIALECT)}' for name in event_columns)} "
        "FROM new_order) "
        "SELECT new_order.id, ARRAY(SELECT id FROM items ORDER BY line_no, component_no) FROM new_order")


def _pg_insert(connection: Connection, new, event: dict) -> tuple[dict | None, list[dict]]:
    json_columns = _json_columns(F)
    parameters = {"o": json_text({k: v for k, v in new.order.items() if k not in json_columns}),
                  **{f"o_{name}": json_text(new.order[name]) for name in json_columns},
                  "i": json_text(new.items), "h": json_text(new.history),
                  **{f"e_{name}": value for name, value in event.items() if name != "fulfilment_id"}}
    row = prepared.execute(connection, pg_statement(), parameters, autocommit=True).fetchone()
    if row is None:
        return None, []
    fulfilment_id, item_ids = row
    items = sorted(new.items, key=lambda item: (item["line_no"], item["component_no"]))
    return dict(new.order), [{**item, "id": item_id, "fulfilment_id": fulfilment_id}
                             for item, item_id in zip(items, item_ids, strict=True)]


def insert_order(connection: Connection, new, event: dict) -> SimpleNamespace | None:
    """Insert ``new`` (``create.NewOrder``) with its inbound ``event`` (InboundEvent's columns but the order id)
    and commit; the order as inserted (its columns, ``items`` its item rows', in line and component order), or
    None — nothing inserted, rolled back — if the transaction id is there already."""
    event = column_values(E, event)
    if connection.dialect.name == "postgresql":  # one statement, autocommitted (then commit and rollback do nothing)
        order, items = _pg_insert(connection, new, event)
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
