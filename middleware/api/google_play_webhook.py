"""``POST /webhooks/google-play``: Google Play real-time developer notifications (Pub/Sub push).

The push's OIDC token is verified first (google-auth: signature against Google's certificates,
``iss``, ``aud``, ``email``, ``email_verified``). The message is recorded once per ``messageId``
and a worker asks the Publisher API what changed. Pub/Sub redelivers anything but 102/200/201/202/204,
so an authenticated message that cannot be read is recorded as rejected and acknowledged (ops see it
with ``flask events list --outcome rejected``) rather than redelivered forever.
"""
from __future__ import annotations

import logging

from flask import Blueprint, jsonify, request
from marshmallow import ValidationError

from mappers import google_play as m
from middleware.metrics import tracing
from middleware.ledger import repository as repo
from middleware.metrics import recorders as metrics
from middleware.services import services
from middleware.stores.google_push_verify import (PushVerificationError, accepts_push, push_audiences,
                                                  push_service_accounts)

from middleware.api import json_body
from middleware.api.errors import ApiError

log = logging.getLogger(__name__)
bp = Blueprint("google_play_webhook", __name__)

ACTS = ("one_time", "subscription", "voided")


def _record(svc, envelope, raw: bytes, namespace, outcome: str, kind, detail) -> int | None:
    return repo.insert_event(svc.engine, source=m.SOURCE, provider_event_id=envelope.message_id,
                             namespace=namespace, content_type=request.content_type, raw_body=raw,
                             outcome=outcome, event_type=kind, detail=detail, trace=tracing.job_trace())


def _answer(envelope, event_id, outcome: str, detail: str | None = None):
    metrics.ingested(m.SOURCE, event_id, outcome)  # kb_ingested_events_total (every answer follows a _record)
    body = {"received": True, "messageId": envelope.message_id, "duplicate": event_id is None, "outcome": outcome}
    if detail:
        body["detail"] = detail
    return jsonify(body)


@bp.post("/webhooks/google-play")
def receive():
    svc = services()
    games = svc.catalog.google_play_games()
    if not games:
        raise ApiError(404, "not_found", "no game takes Google Play notifications")
    try:
        claims = svc.google_push.verify(request.headers.get("Authorization"), push_audiences(svc.catalog),
                                        push_service_accounts(svc.catalog))
    except PushVerificationError as exc:
        if exc.kind == "unavailable":
            raise ApiError(503, "verification_unavailable", str(exc)) from None
        raise ApiError(401, "unauthenticated", str(exc)) from None
    if request.mimetype != "application/json":
        raise ApiError(415, "unsupported_media_type", "Pub/Sub pushes application/json")
    raw = request.get_data()
    try:
        envelope = m.push_envelope(json_body.parse(raw))
    except (ValueError, ValidationError):
        raise ApiError(400, "malformed_body", "the body is not a Pub/Sub push envelope") from None
    try:
        notification = m.notification(envelope.data_b64)
    except m.NotificationError as exc:  # authenticated but unreadable: acknowledged, visible to ops
        event_id = _record(svc, envelope, raw, None, "rejected", None, str(exc)[:2000])
        return _answer(envelope, event_id, "rejected", str(exc))
    game = svc.catalog.by_package_name(notification.package_name)
    if game is None:
        detail = f"unknown packageName {notification.package_name!r}"
        return _answer(envelope, _record(svc, envelope, raw, None, "rejected", notification.kind, detail),
                       "rejected", detail)
    if not accepts_push(game.google_play, claims):  # another game's push subscription: not this game's to act on
        detail = f"the push came through another game's subscription ({claims.get('aud')}), not {game.namespace}'s"
        return _answer(envelope, _record(svc, envelope, raw, None, "rejected", notification.kind, detail),
                       "rejected", detail)
    if notification.kind in ACTS:
        outcome, detail = "pending", None
    elif notification.kind == "test":
        outcome, detail = "ignored", "test notification: nothing changes"
    else:
        outcome, detail = "ignored", f"{notification.kind} notification: recorded, nothing to change"
    event_id = _record(svc, envelope, raw, game.namespace, outcome, notification.kind, detail)  # job: outbox
    return _answer(envelope, event_id, outcome)
