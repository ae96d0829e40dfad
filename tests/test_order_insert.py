"""A new order inserted on SQLAlchemy Core (middleware/orders/order_insert.py, the fulfil PUT's one statement on
PostgreSQL) writes the rows the ORM writes for the same order: its columns, item rows, history entries in their
order, and the inbound event; nothing at all when the transaction id is there already."""
from __future__ import annotations

from sqlalchemy import select

from middleware.ledger import states
from middleware.ledger.models import Fulfilment, InboundEvent, utcnow
from middleware.orders import create, order_insert
from middleware.orders.lines import resolve_line

LINES = [{"itemSku": "starter_pack", "quantity": 2}, {"itemSku": "gems_100", "quantity": 1},
         {"itemSku": "no_such_sku", "quantity": 1}]
EVENT = {"source": "accelbyte", "namespace": "demo", "content_type": "application/json", "raw_body": b"{}"}


def _columns(row, *leave_out) -> dict:
    return {c.key: getattr(row, c.key) for c in row.__table__.columns
            if c.key not in ("id", "fulfilment_id", *leave_out)}


def _snapshot(services, fid) -> tuple:
    with services.session() as session:
        f = session.get(Fulfilment, fid)
        assert all(item.updated_at is not None for item in f.items)  # the time it was written: left out below
        return (_columns(f, "transaction_id"), [_columns(item, "updated_at") for item in f.items],
                [_columns(entry) for entry in f.history])


def test_the_core_insert_writes_what_the_orm_writes(services):
    game = services.catalog.game("demo")
    now = utcnow()
    order = dict(namespace="demo", source="accelbyte", lines=LINES,
                 resolved=[resolve_line(game, line) for line in LINES],
                 actor="storefront:s", state=states.FULFILLING, now=now, player_id="p", storefront="s", key_scope="s",
                 environment="production", lease_owner=services.identity, lease_until=now)
    with services.session() as session:
        f = create.new_order(transaction_id="orm", **order)
        session.add(f)
        session.commit()
        orm_id = f.id
    with services.engine.connect() as connection:
        inserted = order_insert.insert_order(connection, create.new_order_rows(transaction_id="core", **order),
                                             {**EVENT, "provider_event_id": "e-1"})
    assert _snapshot(services, inserted.id) == _snapshot(services, orm_id)
    assert [entry["to_state"] for entry in _snapshot(services, inserted.id)[2]] == [states.RECEIVED, states.FULFILLING]
    with services.session() as session:  # what the insert answered is what it wrote
        stored = session.get(Fulfilment, inserted.id)
        assert _columns(stored) == {key: getattr(inserted, key) for key in _columns(stored)}
        assert [_columns(item) | {"id": item.id} for item in stored.items] == \
               [{key: getattr(item, key) for key in _columns(stored.items[0]) | {"id": 0}} for item in inserted.items]
        event = session.scalars(select(InboundEvent).where(InboundEvent.provider_event_id == "e-1")).one()
        assert (event.fulfilment_id, event.raw_body, event.outcome) == (inserted.id, b"{}", "recorded")


def test_a_transaction_id_already_there_inserts_nothing(services):
    game = services.catalog.game("demo")
    order = dict(namespace="demo", source="accelbyte", transaction_id="t-1", lines=LINES[:1],
                 resolved=[resolve_line(game, LINES[0])], actor="storefront:s", storefront="s", player_id="p")
    with services.engine.connect() as connection:
        assert order_insert.insert_order(connection, create.new_order_rows(**order),
                                         {**EVENT, "provider_event_id": "e-1"}) is not None
        assert order_insert.insert_order(connection, create.new_order_rows(**order),
                                         {**EVENT, "provider_event_id": "e-2"}) is None
    with services.session() as session:
        assert len(session.scalars(select(Fulfilment)).all()) == 1
        assert [e.provider_event_id for e in session.scalars(select(InboundEvent))] == ["e-1"]
