"""The fake Stripe API (emulator/stripe_api.py) for tests: served once per test session on loopback,
reset before each test that asks for ``stripe_fake``.

    def test_x(stripe_fake):
        session = stripe_fake.session(line_items=[{"price": "price_gems", "quantity": 2}])
        client = stripe_fake.client()        # a StripeClient configured like kraty-bridge's
"""
from __future__ import annotations

import threading

import pytest
import requests
import stripe
from werkzeug.serving import WSGIRequestHandler, make_server

from emulator.stripe_api import create_stripe_app

TEST_KEY = "sk_test_fake_kraty_bridge"
# Else the stripe lib writes ~/.config/stripe/telemetry_id on its first request and sends it, the
# platform string and the previous request's timing in headers (kraty-bridge turns it off too).
stripe.enable_telemetry = False


class _QuietHandler(WSGIRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, like a real API

    def log_request(self, code="-", size="-"):
        pass


class StripeFake:
    """Admin client of one served fake; ``url`` is the Stripe API base to give a StripeClient."""

    def __init__(self, url: str, session: requests.Session | None = None):
        self.url = url
        self.http = session or requests.Session()
        self.http.trust_env = False  # never a proxy for loopback

    def _call(self, method: str, path: str, json=None) -> dict:
        response = self.http.request(method, f"{self.url}/_stripe{path}", json=json, timeout=10)
        if response.status_code != 200:
            raise AssertionError(f"{method} /_stripe{path}: {response.status_code} {response.text}")
        return response.json()

    def session(self, **kw) -> dict:
        """Create a Checkout Session (and its PaymentIntent); answers it with all its line items."""
        return self._call("POST", "/checkout_sessions", kw)

    def payment_intent(self, **kw) -> dict:
        return self._call("POST", "/payment_intents", kw)

    def update_session(self, session_id: str, **kw) -> dict:
        """Merge ``metadata`` (""/None removes a key); set client_reference_id, customer, status,
        payment_status."""
        return self._call("PATCH", f"/checkout_sessions/{session_id}", kw)

    def faults(self, *rules: dict) -> list[dict]:
        return self._call("PUT", "/faults", {"rules": list(rules)})["rules"]

    def clear_faults(self) -> None:
        self._call("DELETE", "/faults")

    def requests(self) -> list[dict]:
        """API calls made so far (admin calls excluded): ``{method, path, query, status}``."""
        return self._call("GET", "/requests")["requests"]

    def reset(self) -> None:
        self._call("POST", "/reset")

    def client(self, api_key: str = TEST_KEY) -> stripe.StripeClient:
        return stripe.StripeClient(api_key, base_addresses={"api": self.url}, max_network_retries=0,
                                   http_client=stripe.RequestsClient(timeout=10))


@pytest.fixture(scope="session")
def stripe_api_url():
    """Base URL of a fake Stripe API served in a thread for the whole test session."""
    server = make_server("127.0.0.1", 0, create_stripe_app(), threaded=True,
                         request_handler=_QuietHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()


@pytest.fixture
def stripe_fake(stripe_api_url):
    """The fake's admin client, with objects, faults and the request log reset."""
    fake = StripeFake(stripe_api_url)
    fake.reset()
    yield fake
    fake.http.close()
