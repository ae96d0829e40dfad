"""``POST /webhooks/kraty``: Kraty's own webhooks, verified per Standard Webhooks, recorded once.

The signature is checked with the ``standardwebhooks`` library against the secrets of the game the
body's ``gameId`` names first (rotation: each game lists all its live secrets), so a good webhook costs one
HMAC; when none of them verifies (or the body names no game), against every secret of every game, and
``gameId`` then names which of the games whose secret verified it is. Recorded once per ``webhook-id``
(stable across Kraty's retries) and handled by a worker. Unknown event types are accepted: Kraty adds types
over time.
"""
from __future__ import annotations

import logging
from functools import lru_cache

from flask import Blueprint, jsonify, request
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from middleware.metrics import tracing
from middleware.ledger import repository as repo
from middleware.metrics import recorders as metrics
from middleware.services import services

from middleware.api import json_body
from middleware.api.errors import ApiError

log = logging.getLogger(__name__)
bp = Blueprint("kraty_webhook", __name__)

SOURCE = "kraty"
HEADERS = ("webhook-id", "webhook-timestamp", "webhook-signature")


@lru_cache(maxsize=256)
def _webhook(secret: str) -> Webhook:
    """The verifier of one secret, built once (it decodes the secret's base64)."""
    return Webhook(secret)


def _verifies(game, raw: bytes, headers: dict) -> bool:
    for secret in game.kraty_webhook_secrets:
        try:
            _webhook(secret).verify(raw, headers, json_parse=False)
        except (WebhookVerificationError, ValueError):  # ValueError: a malformed header
            continue
        return True
    return False


def _verified_games(games, raw: bytes, headers: dict) -> list:
    return [game for game in games if _verifies(game, raw, headers)]


def player_of(event: dict) -> str | None:
    """The player a Kraty event is about (erasure and export find its events by it)."""
    data = event.get("data") or {}
    player = data.get("externalPlayerId") or data.get("intoExternalPlayerId")
    return player if isinstance(player, str) and 0 < len(player) <= 255 else None


@bp.post("/webhooks/kraty")
def receive():
    catalog = services().catalog
    if not any(game.kraty_webhook_secrets for game in catalog.games.values()):
        raise ApiError(404, "not_found", "no game takes Kraty's webhooks (kraty_webhook_secrets)")
    headers = {name: request.headers.get(name, "") for name in HEADERS}
    if not all(headers.values()):
        raise ApiError(401, "invalid_signature", "webhook-id, webhook-timestamp and webhook-signature are required")
    if len(headers["webhook-id"]) > 255:
        raise ApiError(400, "malformed_headers", "webhook-id is too long")
    raw = request.get_data()
    body = json_body.parse(raw)  # bounded: None for what cannot be parsed, stored and read back
    game_id = body.get("gameId") if isinstance(body, dict) else None
    # the game the body names, when one of its secrets verifies the signature (the usual case: one HMAC)
    game = next((g for g in catalog.games.values()
                 if game_id is not None and g.kraty_game_id == game_id and _verifies(g, raw, headers)), None)
    if game is None:
        games = _verified_games(catalog.games.values(), raw, headers)
        if not games:
            raise ApiError(401, "invalid_signature", "the signature does not verify with any game's secret, or "
                                                     "its timestamp is more than 5 minutes from now")
    if body is None:
        raise ApiError(400, "malformed_body", "the body is not JSON (or nests too deep, or holds text that is "
                                              "not Unicode)")
    if not isinstance(body, dict) or not isinstance(body.get("type"), str) or not body["type"] \
            or not isinstance(body.get("data"), dict):
        raise ApiError(400, "malformed_body", 'the body is not a Kraty event {"id", "type", "data": {...}}')
    if game is None and game_id is None and len(games) == 1:
        game = games[0]
    if game is None:
        raise ApiError(422, "unknown_game", f"gameId {game_id!r} is not a game this secret belongs to")
    svc = services()
    event_id = repo.insert_event(svc.engine, source=SOURCE, provider_event_id=headers["webhook-id"],
                                 namespace=game.namespace, content_type=request.content_type, raw_body=raw,
                                 outcome="pending", event_type=body["type"][:128], player_id=player_of(body),
                                 trace=tracing.job_trace())  # its job: in the outbox, same commit
    metrics.ingested(SOURCE, event_id)  # kb_ingested_events_total
    return jsonify({"received": True, "id": headers["webhook-id"], "duplicate": event_id is None})
