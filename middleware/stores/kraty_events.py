"""What a verified, recorded Kraty webhook does in the ledger.

``wallet.changed`` / ``inventory.changed`` whose ``sourceRefId`` is a transaction the bridge fulfilled
add "confirmed by Kraty" to that order's history (the bridge passes the store's transaction id as
Kraty's ``sourceRefId`` with every grant and take-back).
"""
from __future__ import annotations

import json

from sqlalchemy import select

from config.catalog import Game

from ..ledger import repository as repo
from ..ledger.models import Fulfilment
from ..services import Services

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


def handle_recorded(svc: Services, game: Game, raw_body: bytes) -> tuple[str, str, str | None]:
    event = json.loads(raw_body)
    if event["type"] in CONFIRMS:
        return _confirm(svc, game, event)
    return "processed", f"{event['type']}: recorded", None
