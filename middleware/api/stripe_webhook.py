"""``POST /webhooks/stripe/<namespace>``: verify a Stripe event, record it once, answer 2xx fast.

Each game's Stripe webhook endpoint has its own path (and signing secrets); ``/webhooks/stripe``
serves the one game when only one has a ``[stripe]`` table. Verify first, on the raw bytes
(the ``stripe`` library's ``WebhookSignature``, against every live secret of the game); then
parse; then commit; then enqueue the job that acts on it (``workers/events.py``).
"""
from __future__ import annotations

import logging
import time

import stripe
from flask import Blueprint, jsonify, request
from marshmallow import ValidationError

from mappers import stripe as m
from mappers import stripe_invoices as mi
from middleware.services import services
from middleware.stores import inbound

from middleware.api import json_body
from middleware.api.errors import ApiError

log = logging.getLogger(__name__)
bp = Blueprint("stripe_webhook", __name__)


def _game(namespace: str | None):
    catalog = services().catalog
    if namespace is None:
        games = catalog.stripe_games()
        if len(games) != 1:
            raise ApiError(404, "not_found", f"{len(games)} games take Stripe events: post to "
                                             "/webhooks/stripe/<namespace>")
        return games[0]
    game = catalog.game(namespace)
    if game is None or game.stripe is None:
        raise ApiError(404, "not_found", f"no game {namespace!r} takes Stripe events")
    return game


def _timestamp(header: str | None) -> int:
    """The header's ``t``, if the header has the shape ``t=<unix>,v1=<hex>[,...]``; else 400. With several
    ``t`` entries, the first: exactly the timestamp the library checks the signature with."""
    if not header:
        raise ApiError(400, "bad_signature_header", "the Stripe-Signature header is missing")
    parts = [part.split("=", 1) for part in header.split(",")]
    if any(len(part) != 2 for part in parts):
        raise ApiError(400, "bad_signature_header", "the Stripe-Signature header is not t=...,v1=...")
    # the FIRST t: the one stripe's WebhookSignature._get_timestamp_and_signatures verifies the v1 against
    stamp = next((value for key, value in parts if key == "t"), None)
    if stamp is None or not stamp.isascii() or not stamp.isdigit() or len(stamp) > 12:
        raise ApiError(400, "bad_signature_header", "the Stripe-Signature header has no valid timestamp t")
    if not any(key == "v1" for key, _ in parts):
        raise ApiError(400, "bad_signature_header", "the Stripe-Signature header has no v1 signature")
    return int(stamp)


def _verify(game, raw: bytes, header: str) -> None:
    tolerance = services().settings.stripe_tolerance_seconds
    if abs(time.time() - _timestamp(header)) > tolerance:  # the library checks only the past
        raise ApiError(401, "invalid_signature", f"the signature's timestamp is more than {tolerance} s "
                                                 "from now")
    try:
        payload = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ApiError(400, "malformed_body", "the body is not UTF-8") from None
    for secret in game.stripe.webhook_secrets:
        try:
            stripe.WebhookSignature.verify_header(payload, header, secret, tolerance)
            return
        except stripe.SignatureVerificationError:
            continue
    raise ApiError(401, "invalid_signature", "no v1 signature matches any of this endpoint's signing secrets")


def _event(raw: bytes) -> m.Event:
    body = json_body.parse(raw)
    if body is None:
        raise ApiError(400, "malformed_body", "the body is not JSON (or nests too deep, or holds text that is not "
                                              "Unicode)")
    try:
        event = m.checkout_event(body)  # the usual event, in one load
        if event is not None:
            return event
        event = m.parse_event(body)
        if event.type == m.INVOICE_PAID:
            mi.invoice(event.object)
        elif event.type in m.HANDLED:
            m.check_object(event)
    except ValueError:
        raise ApiError(400, "malformed_body", "the body is not a Stripe event") from None
    except ValidationError as exc:
        raise ApiError(400, "malformed_event", "not a Stripe event we can read", {"fields": exc.messages}) from None
    return event


def _refused_account(game, event: m.Event) -> str | None:
    """Why a connected account's event is not this game's to act on (None: it is, or it is the platform's).
    Recorded as ``rejected`` and answered 2xx like Google Play's foreign pushes: a non-2xx would only make
    Stripe retry for three days an event that cannot become acceptable by itself."""
    if event.account is None or event.account in game.stripe.connected_accounts:
        return None
    return (f"connected account {event.account} is not one of {game.namespace}'s stripe.connected_accounts: "
            "recorded, nothing done")


@bp.post("/webhooks/stripe", defaults={"namespace": None})
@bp.post("/webhooks/stripe/<namespace>")
def receive(namespace: str | None):
    game = _game(namespace)
    if request.mimetype != "application/json":
        raise ApiError(415, "unsupported_media_type", "Stripe events are application/json")
    raw = request.get_data(cache=False)
    _verify(game, raw, request.headers.get("Stripe-Signature"))
    event = _event(raw)
    if not event.livemode and not game.allow_sandbox:
        raise ApiError(422, "sandbox_not_allowed", f"test-mode events are not accepted for {game.namespace} "
                                                   "(allow_sandbox is false)")
    refused = _refused_account(game, event)
    outcome = "rejected" if refused else "pending" if event.type in m.HANDLED else "ignored"
    event_id = inbound.record_event(services(), source=m.SOURCE, provider_event_id=f"{game.namespace}:{event.id}",
                                    namespace=game.namespace, content_type=request.content_type, raw_body=raw,
                                    outcome=outcome, event_type=event.type,
                                    detail=refused or (None if outcome == "pending" else "event type not acted on"))
    return jsonify({"received": True, "id": event.id, "duplicate": event_id is None,
                    "sandbox": not event.livemode, "outcome": outcome, **({"detail": refused} if refused else {})})
