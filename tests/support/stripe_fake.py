"""The fake Stripe API (emulator/stripe_api.py) for tests: served once per test session on loopback,
reset before each test that asks for ``stripe_fake``.

    def test_x(stripe_fake):
        session = stripe_fake.session(line_items=[{"price": "price_gems", "quantity": 2}])
        client = stripe_fake.client()        # a StripeClient configured like kraty-bridge's
"""
from __future__ import annotations

import pytest
import stripe

from emulator.stripe_api import create_stripe_app

from tests.support.wsgi_server import AdminClient, serve

TEST_KEY = "sk_test_fake_kraty_bridge"
# Else the stripe lib writes ~/.config/stripe/telemetry_id on its first request and sends it, the
# platform string and the previous request's timing in headers (kraty-bridge turns it off too).
stripe.enable_telemetry = False


class StripeFake(AdminClient):
    """Admin client of one served fake; ``url`` is the Stripe API base to give a StripeClient.
    ``requests()`` lists the ``/v1/`` calls."""

    ADMIN = "/_stripe"

    def session(self, **kw) -> dict:
        """Create a Checkout Session (and its PaymentIntent); answers it with all its line items."""
        return self._call("POST", "/checkout_sessions", kw)

    def payment_intent(self, **kw) -> dict:
        return self._call("POST", "/payment_intents", kw)

    def account(self, **kw) -> str:
        """A connected account (Stripe Connect): objects created with ``account=`` live only there."""
        return self._call("POST", "/accounts", kw)["id"]

    def invoice(self, **kw) -> dict:
        """An invoice with ``payments=[{"payment_intent": id}]``, served with its InvoicePayments."""
        return self._call("POST", "/invoices", kw)

    def update_session(self, session_id: str, **kw) -> dict:
        """Merge ``metadata`` (""/None removes a key); set client_reference_id, customer, status,
        payment_status."""
        return self._call("PATCH", f"/checkout_sessions/{session_id}", kw)

    def refund(self, **kw) -> dict:
        """Refund a charge (``charge`` or ``payment_intent``; ``amount`` default: what is left; ``status``)."""
        return self._call("POST", "/refunds", kw)

    def update_refund(self, refund_id: str, **kw) -> dict:
        """Move a refund to another ``status`` (``failed``, ``canceled``...), with a ``failure_reason``."""
        return self._call("PATCH", f"/refunds/{refund_id}", kw)

    def charge(self, charge_id: str) -> dict:
        """A charge as the API serves it (any mode)."""
        return self._call("GET", f"/charges/{charge_id}")

    def client(self, api_key: str = TEST_KEY) -> stripe.StripeClient:
        return stripe.StripeClient(api_key, base_addresses={"api": self.url}, max_network_retries=0,
                                   http_client=stripe.RequestsClient(timeout=10))


@pytest.fixture(scope="session")
def stripe_api_url():
    """Base URL of a fake Stripe API served in a thread for the whole test session."""
    with serve(create_stripe_app()) as url:
        yield url


@pytest.fixture
def stripe_fake(stripe_api_url):
    """The fake's admin client, with objects, faults and the request log reset."""
    yield from StripeFake(stripe_api_url).fresh()
