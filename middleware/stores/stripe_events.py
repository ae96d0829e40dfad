"""What a verified, recorded Stripe event does: fulfil a paid session, record a failure, take back.

Runs in a worker (``workers/events.stripe`` calls ``handle_event``), after the webhook answered 2xx. Every
branch is safe to run twice: purchases are unique per Checkout Session (or PaymentIntent) and per payment,
reversals per refund total or dispute outcome.
"""
from __future__ import annotations

import json

from config.catalog import Game
from mappers import stripe as m
from mappers import stripe_reversals

from middleware.orders.record import record_purchase
from middleware.services import Services
from middleware.stores import recorded_events
from middleware.stores import stripe_reversals as reversals
from middleware.stores.errors import StoreError
from middleware.stores.stripe_invoices import handle_invoice

ACTOR = "stripe"


def _checkout(svc: Services, game: Game, event: m.Event) -> tuple[str, str, str | None]:
    session = m.checkout_session(event.object)
    owner = m.session_namespace(session)
    if owner is not None and owner != game.namespace:
        return "ignored", f"session {session['id']} is for namespace {owner}", None
    if session["mode"] == m.MODE_SUBSCRIPTION:
        return "processed", (f"subscription-mode session {session['id']}: nothing granted by the session, each "
                             "paid period is granted by its invoice (invoice.paid)"), None
    if session["mode"] == m.MODE_SETUP:
        return "processed", f"setup-mode session {session['id']}: nothing was paid, nothing granted", None
    if event.type == m.CHECKOUT_COMPLETED and session["payment_status"] not in m.PAID:
        return "processed", f"completed but {session['payment_status']}: granted when the payment succeeds", None
    charge = None
    if session["payment_intent"]:
        try:
            charge = _latest_charge(svc, game, event, session["payment_intent"])
        except StoreError as exc:
            if exc.transient:
                raise  # the event stays pending: its job is retried
    purchase = m.purchase_from_session(session, event, game.stripe.player_metadata_key,
                                       (charge,) if charge else ())
    return record_purchase(svc, game, purchase, ACTOR).as_event_result()


def _latest_charge(svc: Services, game: Game, event: m.Event, intent: str) -> str | None:
    """The charge of a Checkout payment (its PaymentIntent's ``latest_charge``), which refunds may name alone."""
    found = svc.stripe_api.payment_intent(game.stripe.key_for(event.livemode), intent, event.account)
    return m.ref_id(found.get("latest_charge"))


def _payment_intent(svc: Services, game: Game, event: m.Event) -> tuple[str, str, str | None]:
    pi = m.payment_intent(event.object)
    if m.direct_sku(pi) is None:
        return "ignored", f"no metadata[{m.SKU_KEY}]: a Checkout payment, or not a direct purchase", None
    try:
        sessions = svc.stripe_api.checkout_sessions_of(game.stripe.key_for(event.livemode), pi["id"], event.account)
    except StoreError as exc:
        if exc.transient:
            raise  # the event stays pending: its job is retried
        return "failed", f"could not check {pi['id']} with Stripe: {exc}", None
    if sessions:
        return "ignored", f"{pi['id']} paid Checkout Session {sessions[0]}: fulfilled as that session", None
    purchase = m.purchase_from_payment_intent(pi, event, game.stripe.player_metadata_key)
    return record_purchase(svc, game, purchase, ACTOR).as_event_result()


def handle(svc: Services, game: Game, event: m.Event) -> tuple[str, str, str | None]:
    """-> (outcome, detail, fulfilment id) for the inbound event's row."""
    if event.type in (m.CHECKOUT_COMPLETED, m.ASYNC_SUCCEEDED):
        return _checkout(svc, game, event)
    if event.type in (m.ASYNC_FAILED, m.EXPIRED):
        session = m.checkout_session(event.object)
        return "processed", f"{event.type}: session {session['id']} is not paid, nothing granted", None
    if event.type == m.PI_SUCCEEDED:
        return _payment_intent(svc, game, event)
    if event.type == m.INVOICE_PAID:
        return handle_invoice(svc, game, event)
    if event.type in stripe_reversals.EVENTS:
        return reversals.handle(svc, game, event)
    return "processed", f"{event.type}: recorded, nothing to do", None


def handle_recorded(svc: Services, game: Game, raw_body: bytes) -> tuple[str, str, str | None]:
    """The job's entry: the body was verified and checked when it was recorded."""
    return handle(svc, game, m.parse_event(json.loads(raw_body)))


def handle_event(svc: Services, inbound_event_id: int) -> str | None:
    """The job of a recorded Stripe event (``workers/events.stripe``): handled once while pending, the outcome
    kept on its row (``recorded_events.handle``)."""
    return recorded_events.handle(svc, inbound_event_id, m.SOURCE, handle_recorded)
