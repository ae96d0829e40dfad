"""The voided-purchases poll: refunds and chargebacks whose Play notification never came.

For every game that takes Google Play, ``voidedpurchases.list`` is read from where the last poll
stopped (a persisted time cursor, with some overlap) to now; each voided purchase becomes the same
reversal its notification would have made (same key), so one seen twice takes effect once.
Run by the reconciler job when due (``KB_GOOGLE_VOIDED_POLL_SECONDS``) and by ``flask google poll-voided``.
"""
from __future__ import annotations

import logging
import time

from marshmallow import ValidationError
from sqlalchemy import select

from mappers import google_play as m

from middleware.ledger.models import Fulfilment, StoreCursor, utcnow
from middleware.orders.record import record_reversal
from middleware.services import Services
from middleware.stores.errors import StoreError
from middleware.stores.google_play_events import ACTOR, voided_notice

log = logging.getLogger(__name__)

WINDOW_MS = 30 * 86_400_000     # Google keeps 30 days of voided purchases
OVERLAP_MS = 10 * 60_000        # read a little of the last window again: late arrivals are not missed


def _cursor_name(namespace: str) -> str:
    return f"google_play:voided:{namespace}"


def _subscription_period(svc: Services, namespace: str, order_id: str | None) -> bool:
    if not order_id:
        return False
    with svc.session() as session:
        return session.scalar(select(Fulfilment.id).where(Fulfilment.namespace == namespace,
                                                          Fulfilment.source == "google_play",
                                                          Fulfilment.transaction_id == order_id)) is not None


def poll_game(svc: Services, game, now_ms: int | None = None, since_ms: int | None = None) -> dict:
    """``since_ms``: read from then (``flask backfill google-play --since``) instead of the cursor."""
    now_ms = now_ms or int(time.time() * 1000)  # Google refuses an end time in the future: not later than now
    oldest = now_ms - WINDOW_MS + 60_000                   # ... and a start older than 30 days
    name = _cursor_name(game.namespace)
    with svc.session() as session:
        cursor = session.get(StoreCursor, name)
        start = max(int(cursor.value) - OVERLAP_MS, oldest) if cursor else oldest
        start = start if since_ms is None else max(since_ms, oldest)
    seen = recorded = 0
    page = None
    while True:
        answer = svc.google_play_api.voided(game, start, now_ms, page)
        for raw in answer.get("voidedPurchases") or []:
            seen += 1
            try:
                item = m.voided(raw)
            except ValidationError as exc:
                log.warning("voided purchase of %s not readable, skipped: %s", game.namespace, exc.messages)
                continue
            period = _subscription_period(svc, game.namespace, item.get("order_id"))
            notice = voided_notice(svc, game, item, period)
            if record_reversal(svc, notice, game.namespace, f"{ACTOR}:voided-poll").outcome != "duplicate":
                recorded += 1
        page = (answer.get("tokenPagination") or {}).get("nextPageToken")
        if not page:
            break
    with svc.session() as session:
        cursor = session.get(StoreCursor, name)
        if cursor is None:
            session.add(StoreCursor(name=name, value=str(now_ms), updated_at=utcnow()))
        else:
            cursor.value, cursor.updated_at = str(now_ms), utcnow()
        session.commit()
    return {"namespace": game.namespace, "seen": seen, "recorded": recorded}


def poll_due(svc: Services, force: bool = False) -> list[dict]:
    """Poll every Google Play game whose last poll is older than the interval (all of them if ``force``)."""
    results = []
    interval = svc.settings.google_voided_poll_seconds
    for game in svc.catalog.google_play_games():
        with svc.session() as session:
            cursor = session.get(StoreCursor, _cursor_name(game.namespace))
            due = force or cursor is None or (utcnow() - cursor.updated_at).total_seconds() >= interval
        if not due:
            continue
        try:
            results.append(poll_game(svc, game))
        except StoreError as exc:  # tried again at the next interval; the cursor did not move
            log.warning("voided purchases of %s: %s", game.namespace, exc)
            results.append({"namespace": game.namespace, "error": str(exc)})
    return results
