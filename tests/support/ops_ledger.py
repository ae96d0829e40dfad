"""Helpers of the ops API tests: API keys by role, orders in given states, reading the ledger."""
from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import select, update

from middleware.ledger import api_keys
from middleware.ledger.models import AuditEntry, Fulfilment, FulfilmentItem

from tests.support.orders_flow import put_order

GEMS = {"itemSku": "gems_100", "quantity": 1}
SWORD = {"itemSku": "sword", "quantity": 1}


def key(services, role: str, namespaces: list[str] | None = None) -> dict:
    """Authorization headers of a new API key with ``role`` (its name: ``<role>-<hex>``)."""
    with services.session() as session:
        made = api_keys.create(session, f"{role}-{uuid.uuid4().hex[:8]}", role, namespaces)
        session.commit()
    return {"Authorization": f"Bearer {made}"}


def key_name(services, headers: dict) -> str:
    token = headers["Authorization"].split(" ", 1)[1]
    with services.session() as session:
        return api_keys.find(session, token).name


def order_id(services, txn: str) -> str:
    with services.session() as session:
        return session.scalars(select(Fulfilment.id).where(Fulfilment.transaction_id == txn)).one()


def set_created_at(services, when: datetime, fulfilment_id: str | None = None) -> None:
    """Back-date an order (None: every order) and its item rows' copy of its created_at, as the SKU filter
    reads that copy (in production an order's created_at never changes)."""
    with services.session() as session:
        orders, items = update(Fulfilment), update(FulfilmentItem)
        if fulfilment_id is not None:
            orders = orders.where(Fulfilment.id == fulfilment_id)
            items = items.where(FulfilmentItem.fulfilment_id == fulfilment_id)
        session.execute(orders.values(created_at=when))
        session.execute(items.values(order_created_at=when))
        session.commit()


def state(services, fulfilment_id: str) -> str:
    with services.session() as session:
        return session.get(Fulfilment, fulfilment_id).state


def audit_entries(services, fulfilment_id: str) -> list[AuditEntry]:
    with services.session() as session:
        rows = list(session.scalars(select(AuditEntry).where(AuditEntry.target_id == fulfilment_id)
                                    .order_by(AuditEntry.id)))
        session.expunge_all()
        return rows


def failed_order(client, emulator, services, txn="t-failed", user="player-1") -> str:
    """An order FULFILL_FAILED because Kraty refused its sword (its gems granted); faults cleared after."""
    emulator.faults({"path": "/inventory/sword/grant", "status": 400, "code": "validation_failed",
                     "message": "nope"})
    response = put_order(client, [GEMS, SWORD], txn=txn, user=user)
    assert response.get_json()["state"] == "FULFILL_FAILED", response.get_json()
    emulator.clear_faults()
    return order_id(services, txn)


def fulfilled_order(client, services, txn="t-ok", user="player-1", items=None) -> str:
    response = put_order(client, items or [GEMS], txn=txn, user=user)
    assert response.get_json()["state"] == "FULFILLED", response.get_json()
    return order_id(services, txn)
