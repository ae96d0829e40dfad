"""A ``Stripe-Signature`` with two ``t=`` entries: freshness is checked on the very ``t`` the stripe library
verified the signature with (its ``WebhookSignature._get_timestamp_and_signatures`` takes the first)."""
from __future__ import annotations

import hashlib
import hmac
import time

from tests.support.stripe_events import SECRET, body_of, completed, post


def _mac(body: bytes, t: int) -> str:
    return hmac.new(SECRET.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()


def _paid(stripe_fake) -> bytes:
    session = stripe_fake.session(client_reference_id="player-1", line_items=[{"price": "price_gems_100"}])
    return body_of(completed(session))


def test_a_far_future_signed_t_is_refused_even_with_a_fresh_second_t(client, stripe_fake):
    body, now = _paid(stripe_fake), int(time.time())
    future = now + 86_400  # the library checks only the past; the signature is over this t
    response = post(client, body, signature=f"t={future},t={now},v1={_mac(body, future)}")
    assert response.status_code == 401
    assert response.get_json()["error"]["code"] == "invalid_signature"


def test_a_fresh_signed_t_passes_whatever_t_follows(client, stripe_fake):
    body, now = _paid(stripe_fake), int(time.time())
    response = post(client, body, signature=f"t={now},t={now - 86_400},v1={_mac(body, now)}")
    assert response.status_code == 200, response.get_json()
