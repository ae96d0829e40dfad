"""The bridge's own purchase events for the sinks: purchase.fulfilled, .failed, .revoked, .regranted.

Emitted in the same transaction as the state change they report (the attempt's results commit), so a
delivery exists if and only if the change does; the deliveries are enqueued after the commit.
"""
from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import object_session

from middleware.ledger import states
from middleware.ledger.models import Fulfilment
from middleware.sinks.events import emit


def _lines(f: Fulfilment) -> list[dict]:
    seen: dict[int, dict] = {}
    for item in f.items:
        seen.setdefault(item.line_no, {"sku": item.sku, "itemId": item.item_id, "quantity": item.line_quantity})
    return [seen[line] for line in sorted(seen)]


def payload(f: Fulfilment, **extra) -> dict:
    return {"fulfilmentId": f.id, "store": f.source, "environment": f.environment,
            "transactionId": f.transaction_id, "playerId": f.player_id, "state": f.state, "reason": f.reason,
            "products": _lines(f), "price": f.price, "currency": f.currency, **extra}


def event_type(f: Fulfilment, success: str) -> tuple[str | None, dict]:
    """What an attempt that just ended reports (None: nothing worth an event)."""
    if f.state == states.FULFILLED and success == states.FULFILLED:
        return ("purchase.regranted" if f.reversal_seq else "purchase.fulfilled"), {}
    if f.state == states.FULFILL_FAILED:
        return "purchase.failed", {}
    if f.state == states.REVOKED:
        return "purchase.revoked", {"partial": False}
    if f.state == states.FULFILLED:  # a partial take-back finished
        return "purchase.revoked", {"partial": True}
    return None, {}


def emit_outcome(services, f: Fulfilment, success: str, now: datetime) -> list[str]:
    kind, extra = event_type(f, success)
    if kind is None or services.sinks is None:
        return []
    return emit(object_session(f), kind, f.namespace, f.player_id, f.environment, now, payload(f, **extra),
                sinks=services.sinks, fulfilment_id=f.id)
