"""The "no player" hint of a Stripe purchase is there only when no player was found (it was on every order).

The objects are built as Stripe's API reference shows a Checkout Session and a PaymentIntent (every field,
``client_reference_id`` null unless set, ``metadata`` an object); the ledger test runs a real
``checkout.session.completed`` through the Stripe fake and reads the order's "received" history entry."""
from __future__ import annotations

import pytest

from mappers import stripe as m
from tests.support.stripe_events import completed
from tests.test_stripe_orders import deliver, new_session
from tests.support.accelbyte import make_app  # noqa: F401  (fixture)
from middleware.ledger import repository as repo
from middleware.ledger.models import Fulfilment
from sqlalchemy import select

EVENT = m.Event(id="evt_1", type="checkout.session.completed", livemode=False, object={})


def stripe_session(client_reference_id=None, metadata=None) -> dict:
    """A completed Checkout Session as in Stripe's API reference (the Checkout Session object)."""
    return {"id": "cs_test_a11YYufWQzNY63zpQ6QSNRQhkUpVph4WRmzW0zWJO2znZKdVujZ0N0S22u", "object": "checkout.session",
            "after_expiration": None, "allow_promotion_codes": None, "amount_subtotal": 2198, "amount_total": 2198,
            "automatic_tax": {"enabled": False, "liability": None, "status": None}, "billing_address_collection": None,
            "cancel_url": None, "client_reference_id": client_reference_id, "consent": None,
            "consent_collection": None, "created": 1679600215, "currency": "usd", "custom_fields": [],
            "custom_text": {"shipping_address": None, "submit": None}, "customer": None,
            "customer_creation": "if_required", "customer_details": None, "customer_email": None,
            "expires_at": 1679686615, "invoice": None, "invoice_creation": {"enabled": False, "invoice_data": {}},
            "livemode": False, "locale": None, "metadata": metadata if metadata is not None else {},
            "mode": "payment", "payment_intent": "pi_3MtwBwLkdIwHu7ix28a3tqPa", "payment_link": None,
            "payment_method_collection": "always", "payment_method_options": {}, "payment_method_types": ["card"],
            "payment_status": "paid", "phone_number_collection": {"enabled": False}, "recovered_from": None,
            "setup_intent": None, "shipping_address_collection": None, "shipping_cost": None,
            "shipping_details": None, "shipping_options": [], "status": "complete", "submit_type": None,
            "subscription": None, "success_url": "https://example.com/success",
            "total_details": {"amount_discount": 0, "amount_shipping": 0, "amount_tax": 0}, "url": None}


def payment_intent(metadata) -> dict:
    """A succeeded PaymentIntent as in Stripe's API reference (the PaymentIntent object)."""
    return {"id": "pi_3MtwBwLkdIwHu7ix28a3tqPa", "object": "payment_intent", "amount": 499, "amount_capturable": 0,
            "amount_details": {"tip": {}}, "amount_received": 499, "application": None,
            "application_fee_amount": None, "automatic_payment_methods": {"enabled": True}, "canceled_at": None,
            "cancellation_reason": None, "capture_method": "automatic", "client_secret": "pi_3Mtw_secret_YrKJ",
            "confirmation_method": "automatic", "created": 1680800504, "currency": "usd", "customer": None,
            "description": None, "last_payment_error": None, "latest_charge": "ch_3MtwBwLkdIwHu7ix28a3tqPa",
            "livemode": False, "metadata": metadata, "next_action": None, "on_behalf_of": None,
            "payment_method": "pm_1MtwBwLkdIwHu7ixik6SYUqU", "payment_method_options": {},
            "payment_method_types": ["card"], "processing": None, "receipt_email": None, "review": None,
            "setup_future_usage": None, "shipping": None, "source": None, "statement_descriptor": None,
            "statement_descriptor_suffix": None, "status": "succeeded", "transfer_data": None, "transfer_group": None}


@pytest.mark.parametrize("reference, metadata, player", [
    ("player-1", {"player_id": "player-1"}, "player-1"),   # both set: the case
    ("player-1", {}, "player-1"), (None, {"player_id": "player-2"}, "player-2")])
def test_a_session_naming_its_player_has_no_hint(reference, metadata, player):
    p = m.purchase_from_session(m.checkout_session(stripe_session(reference, metadata)), EVENT, "player_id")
    assert p.player_id == player and "player_hint" not in p.detail


def test_a_session_naming_no_player_says_so_and_an_unusable_one_says_which():
    p = m.purchase_from_session(m.checkout_session(stripe_session()), EVENT, "player_id")
    assert p.player_id is None and p.detail["player_hint"] == "no client_reference_id and no metadata[player_id]"
    p = m.purchase_from_session(m.checkout_session(stripe_session("has spaces")), EVENT, "player_id")
    assert p.player_id is None and p.detail["player_hint"].startswith("client_reference_id not a usable player id")


def test_a_payment_intent_hint_only_without_a_player():
    named = m.purchase_from_payment_intent(m.payment_intent(payment_intent(
        {"player_id": "player-1", m.SKU_KEY: "gems_100"})), EVENT, "player_id")
    assert named.player_id == "player-1" and "player_hint" not in named.detail
    unnamed = m.purchase_from_payment_intent(m.payment_intent(payment_intent({m.SKU_KEY: "gems_100"})), EVENT, "player_id")
    assert unnamed.detail["player_hint"] == "no metadata[player_id] on the PaymentIntent"


def test_an_order_with_both_set_keeps_no_hint_in_its_history(client, services, redis, emulator, stripe_fake):
    session = new_session(stripe_fake, client_reference_id="player-1", metadata={"player_id": "player-1"})
    deliver(client, redis, completed(session))
    with services.session() as s:
        f = s.scalars(select(Fulfilment).where(Fulfilment.transaction_id == session["id"])).one()
        received = repo.load(s, f.id, history=True).history[0].detail
    assert received["event"] == "received" and "player_hint" not in received
