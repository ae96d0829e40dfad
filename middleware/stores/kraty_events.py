"""What a verified, recorded Kraty webhook does in the ledger.

``wallet.changed`` / ``inventory.changed`` whose ``sourceRefId`` is a transaction the bridge fulfilled
add "confirmed by Kraty" to that order's history (the bridge passes the store's transaction id as
Kraty's ``sourceRefId`` with every grant and take-back).
"""
from __future__ import annotations

import json
from datetime import datetime, timezone

from sqlalchemy import select

from config.catalog import Game

from ..ledger import repository as repo
from ..ledger.models import Fulfilment, utcnow
from ..services import Services
from ..sinks.events import emit, enqueue_new

ACTOR = "kraty"
CONFIRMS = ("wallet.changed", "inventory.changed")


def _confirm(svc: Services, game: Game, event: dict) -> tuple[str, str, str | None]:
    data = event["data"]
    ref = data.get("sourceRefId")
    if not isinstance(ref, str) or not ref:
        return "processed", f"{event['type']}: no sourceRefId", None
    with svc.session() as session:
        orders = list(session.scalars(select(Fulfilment).where(Fulfilment.namespace == game.namespace,
                                                               Fulfilment.transaction_id == ref)))
        for f in orders:
            repo.note(f, ACTOR, {"confirmed_by_kraty": event["type"], "event": event.get("id"),
                                 "ledger_entry": data.get("ledgerEntryId"),
                                 "key": data.get("currencyKey") or data.get("itemKey"), "delta": data.get("delta")})
        session.commit()
    if not orders:
        return "processed", f"{event['type']}: {ref} is not an order of the bridge", None
    return "processed", f"{event['type']}: confirmed order {orders[0].id}", orders[0].id


def _pass_on(svc: Services, game: Game, event: dict) -> int:
    """Kraty's event, as it came, to every sink that wants its type (unknown types too)."""
    data = event.get("data") or {}
    player = data.get("externalPlayerId") if isinstance(data.get("externalPlayerId"), str) else None
    try:
        occurred = datetime.fromisoformat(str(event.get("createdAt")).replace("Z", "+00:00"))
        occurred = occurred if occurred.tzinfo else occurred.replace(tzinfo=timezone.utc)
    except ValueError:
        occurred = utcnow()
    with svc.session() as session:
        ids = emit(session, event["type"], game.namespace, player, "production", occurred,
                   {"source": "kraty", **event}, sinks=svc.sinks)
        session.commit()
    return enqueue_new(svc.redis, ids) if ids else 0


def handle_recorded(svc: Services, game: Game, raw_body: bytes) -> tuple[str, str, str | None]:
    event = json.loads(raw_body)
    passed = _pass_on(svc, game, event) if svc.sinks is not None else 0
    if event["type"] in CONFIRMS:
        outcome, detail, fulfilment_id = _confirm(svc, game, event)
    else:
        outcome, detail, fulfilment_id = "processed", f"{event['type']}: recorded", None
    return outcome, f"{detail}; passed on to {passed} sink delivery(ies)", fulfilment_id
