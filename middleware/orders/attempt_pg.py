"""PostgreSQL: each transaction of the Core attempt (``attempt_core``) as ONE statement, with data-modifying
CTEs, run prebuilt and autocommitted (``ledger/prepared.py``), so a worker's attempt is two round trips to the
database: no BEGIN and no COMMIT (the results statement runs in a transaction when a purchase event joins it).

- The claim: ``WITH claimed AS (UPDATE fulfilments ... RETURNING *), transition AS (INSERT INTO
  fulfilment_history ... FROM claimed WHERE it moved RECEIVED -> FULFILLING now) SELECT claimed.*, its items``.
- The results: ``WITH fenced AS (UPDATE fulfilments ... WHERE version = <the claim's> RETURNING id,
  set_config('synchronous_commit', 'off', true)), item<k> AS (UPDATE fulfilment_items ... WHERE EXISTS
  (fenced)) INSERT INTO fulfilment_history ... FROM fenced``: it inserts one row if and only if the version
  still matched (the lease was not taken over), and then nothing else was left out.

Every part of such a statement sees the same snapshot and runs to completion (PostgreSQL's rule for
data-modifying WITH), so the parts take effect together or, when the fence fails, not at all.
"""
from __future__ import annotations

from functools import lru_cache

from sqlalchemy import bindparam, exists, func, insert, literal, select, update

from middleware.ledger import states
from middleware.ledger.prepared import Prepared, json_param
from middleware.ledger.models import Fulfilment, FulfilmentItem, HistoryEntry, UTCDateTime

F, I, H = Fulfilment.__table__, FulfilmentItem.__table__, HistoryEntry.__table__
ITEM_PREFIX = "item_"
HISTORY_COLUMNS = ["fulfilment_id", "at", "actor", "from_state", "to_state", "detail"]


def claim_statement(claim, now):
    """``claim``: attempt_core's claim UPDATE ... RETURNING; ``now``: its bound time. Rows: the order's columns
    and its items' (prefixed ``item_``), one row per item in (line, component) order."""
    claimed = claim.cte("claimed")
    transition = insert(H).from_select(
        HISTORY_COLUMNS[:5],
        select(claimed.c.id, now, bindparam("p_actor", type_=H.c.actor.type), literal(states.RECEIVED),
               literal(states.FULFILLING)).where(claimed.c.state_changed_at == now)).cte("transition")
    items = [column.label(ITEM_PREFIX + column.name) for column in I.c]
    return (select(claimed, *items).select_from(claimed.outerjoin(I, I.c.fulfilment_id == claimed.c.id))
            .order_by(I.c.line_no, I.c.component_no).add_cte(transition))


def split_rows(statement: Prepared, cursor) -> tuple[dict | None, list[dict]]:
    """The order's columns and each item's, from ``claim_statement``'s rows (``cursor``, it executed)."""
    rows = cursor.fetchall()
    if not rows:
        return None, []
    names = statement.names(cursor)
    split = next(k for k, name in enumerate(names) if name.startswith(ITEM_PREFIX))
    item_names = [name[len(ITEM_PREFIX):] for name in names[split:]]
    order = dict(zip(names[:split], rows[0][:split], strict=True))
    return order, [dict(zip(item_names, row[split:], strict=True)) for row in rows if row[split] is not None]


@lru_cache(maxsize=32)
def results_statement(results, item_columns: tuple[str, ...], count: int) -> Prepared:
    """``results``: attempt_core's fenced UPDATE; ``count`` item rows to write (parameters ``i<k>_<column>``),
    then the history row (``h_<column>``). Its rowcount is 1 when the fence held, else 0 and nothing changed."""
    fenced = results.returning(F.c.id, func.set_config("synchronous_commit", "off", True)).cte("fenced")
    statement = insert(H).from_select(
        HISTORY_COLUMNS,
        select(fenced.c.id, bindparam("h_at", type_=UTCDateTime()), bindparam("h_actor", type_=H.c.actor.type),
               bindparam("h_from_state", type_=H.c.from_state.type), bindparam("h_to_state", type_=H.c.to_state.type),
               bindparam("h_detail", type_=H.c.detail.type))).add_cte(fenced)
    for k in range(count):
        statement = statement.add_cte(
            update(I).where(I.c.id == bindparam(f"i{k}_id"), exists(select(fenced.c.id)))
            .values(**{name: bindparam(f"i{k}_{name}", type_=I.c[name].type) for name in item_columns})
            .cte(f"item{k}"))
    return Prepared(statement)


def results_parameters(base: dict, items: list, item_columns: tuple[str, ...], entry: dict) -> dict:
    parameters = dict(base)
    for k, item in enumerate(items):
        parameters[f"i{k}_id"] = item.id
        parameters.update({f"i{k}_{name}": getattr(item, name) for name in item_columns})
    parameters.update({f"h_{name}": entry[name] for name in HISTORY_COLUMNS[1:]})
    parameters["h_detail"] = json_param(parameters["h_detail"])
    return parameters
