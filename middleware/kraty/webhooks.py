"""What a verified, recorded Kraty webhook does in the ledger.

``wallet.changed`` / ``inventory.changed`` whose ``sourceRefId`` is a transaction the bridge fulfilled
add "confirmed by Kraty" to that order's history (the bridge passes the store's transaction id as
Kraty's ``sourceRefId`` with every grant and take-back).
"""
from __future__ import annotations

import hashlib
import json
from datetime import datetime, timezone

from sqlalchemy import select

from config.catalog import Game

from middleware.ops import privacy
from middleware.ledger import repository as repo
from middleware.ledger.models import Fulfilment, utcnow
from middleware.services import Services
from middleware.sinks.outbound_events import emit, enqueue_new
from middleware.stores import recorded_events

ACTOR = "kraty"
SOURCE = "kraty"  # the inbound events' source (api/kraty_webhook.py records them)
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


def _occurred(event: dict) -> datetime:
    try:
        occurred = datetime.fromisoformat(str(event.get("createdAt")).replace("Z", "+00:00"))
    except ValueError:
        return utcnow()
    return occurred if occurred.tzinfo else occurred.replace(tzinfo=timezone.utc)


def outbound_id(namespace: str, event: dict, raw_body: bytes) -> str:
    """The id sinks see for a passed-on Kraty event: the same however often the webhook is handled."""
    basis = event.get("id") if isinstance(event.get("id"), str) else hashlib.sha256(raw_body).hexdigest()
    return "krt_" + hashlib.sha256(f"{namespace}\n{basis}".encode()).hexdigest()[:32]


def _text(data: dict, key: str) -> str | None:
    value = data.get(key)
    return value if isinstance(value, str) and 0 < len(value) <= 255 else None


def _pass_on(svc: Services, session, game: Game, event: dict, raw_body: bytes, player: str | None) -> tuple[str, list]:
    """Kraty's event, as it came, for every sink that wants its type (unknown types too), in ``session``."""
    event_id = outbound_id(game.namespace, event, raw_body)
    ids = emit(session, event["type"], game.namespace, player, "production", _occurred(event),
               {"source": "kraty", **event}, sinks=svc.sinks, event_id=event_id) if svc.sinks is not None else []
    return event_id, ids


def handle_recorded(svc: Services, game: Game, raw_body: bytes) -> tuple[str, str, str | None]:
    event = json.loads(raw_body)
    data = event["data"]
    kind = event["type"]
    player = _text(data, "externalPlayerId") or _text(data, "intoExternalPlayerId")
    detail = f"{kind}: recorded"
    with svc.session() as session:
        event_id, ids = _pass_on(svc, session, game, event, raw_body, player)
        if kind == "player.deleted" and player:
            erased = privacy.erase(session, game.namespace, player, kraty_player_id=_text(data, "playerId"),
                                   keep_event=event_id, actor=ACTOR)
            detail = f"player.deleted: erased, now {erased.placeholder} ({erased.counts})"
        elif kind == "player.merged" and _text(data, "fromExternalPlayerId") and player:
            counts = privacy.merge(session, game.namespace, data["fromExternalPlayerId"], player, actor=ACTOR)
            detail = f"player.merged: moved to {player} ({counts})"
        session.commit()
    passed = enqueue_new(svc.jobs, ids) if ids else 0
    fulfilment_id = None
    if kind in CONFIRMS:
        _, detail, fulfilment_id = _confirm(svc, game, event)
    return "processed", f"{detail}; passed on to {passed} sink delivery(ies)", fulfilment_id


def handle_event(svc: Services, inbound_event_id: int) -> str | None:
    """The job of a recorded Kraty webhook (``workers/events.kraty``): handled once while pending, the outcome
    kept on its row (``recorded_events.handle``)."""
    return recorded_events.handle(svc, inbound_event_id, SOURCE, handle_recorded)
