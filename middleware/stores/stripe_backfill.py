"""Backfill for Stripe: the events of the last 30 days that the bridge never recorded.

``fetch`` lists ``/v1/events`` (``types`` = the event types the bridge acts on, ``created >= since``,
100 a page) through the stripe library's client, with each of the game's API keys (the live key, and
the test key when the game takes sandbox data). ``record`` takes one event down the webhook's path:
read by the same mapper, recorded once per ``<namespace>:<event id>``, acted on by the same job.

Authenticity: a webhook proves itself with its ``Stripe-Signature``; an event listed here needs no
signature, because it was fetched over TLS from Stripe's API with the game's own secret key — only
Stripe could have answered it. It is checked as strictly otherwise (shape, mode vs ``allow_sandbox``).
"""
from __future__ import annotations

import json
import logging

from marshmallow import ValidationError

from mappers import stripe as m

from middleware.services import Services
from middleware.stores import inbound
from middleware.stores.stripe_api import PAGE, _classified

log = logging.getLogger(__name__)

HISTORY_DAYS = 30  # Stripe lists the events of the last 30 days


def api_keys(game) -> list[str]:
    keys = [game.stripe.api_key]
    if game.allow_sandbox and game.stripe.test_api_key not in (None, game.stripe.api_key):
        keys.append(game.stripe.test_api_key)
    return keys


def fetch(svc: Services, game, since_ms: int, until_ms: int) -> list[dict]:
    """The events of the handled types created in the window, oldest first, for every key of the game."""
    events: list[dict] = []
    params = {"types": sorted(m.HANDLED), "created": {"gte": since_ms // 1000, "lte": until_ms // 1000},
              "limit": PAGE}
    for key in api_keys(game):
        client = svc.stripe_api._client(key)
        page_params = dict(params)
        with _classified(f"events of {game.namespace}"):
            while True:
                page = client.v1.events.list(params=page_params).to_dict()
                events += page["data"]
                if not (page.get("has_more") and page["data"]):
                    break
                page_params["starting_after"] = page["data"][-1]["id"]
    return sorted(events, key=lambda event: (event.get("created", 0), event.get("id", "")))


def record(svc: Services, game, data: dict) -> bool:
    """Record one listed event; True when the bridge had never seen it (a gap)."""
    try:
        event = m.parse_event(data)
        m.check_object(event)
    except ValidationError as exc:
        log.warning("backfill: Stripe event %s of %s is not readable: %s", data.get("id"), game.namespace, exc.messages)
        return False
    if not event.livemode and not game.allow_sandbox:
        return False
    raw = json.dumps(data, separators=(",", ":")).encode()
    return inbound.record_event(svc, source=m.SOURCE, provider_event_id=f"{game.namespace}:{event.id}",
                                namespace=game.namespace, raw_body=raw, outcome="pending", event_type=event.type,
                                detail=None) is not None
