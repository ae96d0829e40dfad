"""Backfill for the App Store: the notifications Apple sent (or tried to) that the bridge never recorded.

``fetch`` reads the game's notification history (App Store Server API ``Get Notification History``,
through Apple's library, for each environment the game accepts); ``record`` takes one ``signedPayload``
down the webhook's path: verified by the same ``SignedDataVerifier`` (chain, signature, bundle id,
environment), then recorded once per ``notificationUUID`` and acted on by the same job. A notification
the webhook already recorded is a duplicate and changes nothing.
"""
from __future__ import annotations

import json
import logging

from mappers import app_store as m

from middleware.services import Services
from middleware.stores import inbound
from middleware.stores.app_store_verify import AppStoreVerificationError

log = logging.getLogger(__name__)

HISTORY_DAYS = 180  # Apple keeps (and lets you ask for) 180 days of notification history


def environments(game) -> list[str]:
    config = game.app_store
    return [env for env, on in (("Production", config.allow_production), ("Sandbox", game.allow_sandbox)) if on]


def fetch(svc: Services, game, since_ms: int, until_ms: int) -> list[str]:
    """Every signedPayload of the game's notification history in the window, all environments."""
    payloads: list[str] = []
    for environment in environments(game):
        payloads += svc.app_store_api.notification_history(game, environment, since_ms, until_ms)
    return payloads


def record(svc: Services, game, signed: str) -> bool:
    """Record one notification from the history; True when the bridge had never seen it (a gap)."""
    try:
        verified = svc.app_store.notification(signed)
        kind, uuid, outcome, detail = inbound.app_store_outcome(verified)
    except (AppStoreVerificationError, inbound.UnreadableEvent) as exc:
        log.warning("backfill: a notification of %s's history was refused: %s", game.namespace, exc)
        return False
    if verified.game.namespace != game.namespace:
        return False
    raw = json.dumps({"signedPayload": signed}, separators=(",", ":")).encode()
    return inbound.record_event(svc, source=m.SOURCE, provider_event_id=uuid, namespace=game.namespace, raw_body=raw,
                                outcome=outcome, event_type=kind, detail=detail) is not None
