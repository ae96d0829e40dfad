"""``POST /webhooks/app-store``: App Store Server Notifications V2, verified with Apple's library.

The notification (and its nested signed transaction) is verified first; its ``bundleId`` picks the
game. It is then recorded once per ``notificationUUID`` and a worker acts on it. Apple retries any
non-2xx: a verification Apple's OCSP responder could not finish (status 7) answers 503 so it does.
"""
from __future__ import annotations

import logging

from flask import Blueprint, jsonify, request

from mappers import app_store as m
from middleware.ledger.recorded import recorded_outcome
from middleware.services import services
from middleware.stores import inbound
from middleware.stores.app_store_verify import AppStoreVerificationError

from middleware.api.errors import ApiError

log = logging.getLogger(__name__)
bp = Blueprint("app_store_webhook", __name__)

MAX_PAYLOAD = 64 * 1024


def verification_failed(exc: AppStoreVerificationError, what: str) -> ApiError:
    """malformed -> 400, retryable (OCSP unreachable) -> 503, not accepted -> 422, else -> 401."""
    if exc.kind == "retryable":
        return ApiError(503, "verification_unavailable", f"{what} could not be verified now; try again")
    if exc.kind == "malformed":
        return ApiError(400, "malformed_jws", str(exc))
    if exc.kind == "not_accepted":
        return ApiError(422, "not_accepted", str(exc))
    return ApiError(401, "invalid_signature", str(exc))


def log_refusal(what: str, exc: AppStoreVerificationError, error: ApiError) -> ApiError:
    """One log line per refused App Store JWS (notification or receipt): the answer's status and code, the
    cause and Apple's status — never the JWS itself. The request id is on the line (middleware/logs.py)."""
    status = getattr(exc.status, "name", exc.status)
    log.info("app store %s refused: %s %s: %s (cause: %s; verification status %s)", what, error.status,
             error.code, exc, exc.detail or exc.kind, status)
    return error


def _signed_payload() -> str:
    if request.mimetype != "application/json":
        raise ApiError(415, "unsupported_media_type", "App Store notifications are application/json")
    try:
        body = request.get_json(silent=True)
    except RecursionError:  # nested deeper than the JSON decoder goes (silent covers only ValueError)
        body = None
    if not isinstance(body, dict) or not isinstance(body.get("signedPayload"), str) or not body["signedPayload"]:
        raise ApiError(400, "malformed_body", 'the body is not {"signedPayload": "<JWS>"}')
    if len(body["signedPayload"]) > MAX_PAYLOAD:
        raise ApiError(400, "malformed_body", "signedPayload is too long")
    return body["signedPayload"]


@bp.post("/webhooks/app-store")
def receive():
    signed = _signed_payload()
    svc = services()
    try:
        verified = svc.app_store.notification(signed)
    except AppStoreVerificationError as exc:
        raise log_refusal("notification", exc, verification_failed(exc, "the notification")) from None
    try:
        kind, uuid, outcome, detail = inbound.app_store_outcome(verified)
    except inbound.UnreadableEvent as exc:
        raise ApiError(400, "malformed_notification", str(exc)) from None
    event_id = inbound.record_event(svc, source=m.SOURCE, provider_event_id=uuid, namespace=verified.game.namespace,
                                    content_type=request.content_type, raw_body=request.get_data(),
                                    outcome=outcome, event_type=kind, detail=detail)
    answer = {"received": True, "notificationUUID": uuid, "duplicate": event_id is None,
              "environment": verified.environment, "outcome": outcome}
    if event_id is None:  # a duplicate: what the first one led to, as recorded
        answer.update(recorded_outcome(svc, m.SOURCE, uuid))
    return jsonify(answer)
