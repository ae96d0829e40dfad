"""The fake Google Play API (emulator/google_play_api.py) for tests: served once per test session on
loopback, reset before each test that asks for ``google_fake``.

    def test_x(google_fake):
        info = google_fake.service_account()          # service-account JSON, token_uri = the fake
        purchase = google_fake.product(productId="gems_100", quantity=2)
        http = google_fake.authorized_session(info)   # google-auth, configured like kraty-bridge's
        http.get(f"{google_fake.purchases_url()}/productsv2/tokens/{purchase['token']}")
"""
from __future__ import annotations

import pytest
import requests
from google.auth.transport.requests import AuthorizedSession, Request
from google.oauth2 import service_account

from emulator.google_play_api import create_google_app
from emulator.google_play_store import DEFAULT_PACKAGE

from tests.support.wsgi_server import AdminClient, serve

SCOPES = ["https://www.googleapis.com/auth/androidpublisher"]


class NoHttpsAdapter(requests.adapters.BaseAdapter):
    """Refuses every https:// request: the fake is plain http on loopback, so this only stops
    google-auth's own calls to Google (its background Regional Access Boundary lookup at
    iamcredentials.googleapis.com after a token refresh) from leaving the machine."""

    def __init__(self):
        super().__init__()
        self.refused: list[str] = []

    def __deepcopy__(self, memo):  # google-auth deep-copies the transport for its thread
        return self

    def send(self, request, **kwargs):
        self.refused.append(request.url)
        raise requests.ConnectionError(f"tests stay on loopback: {request.url} refused")

    def close(self):
        pass


class GoogleFake(AdminClient):
    """Admin client of one served fake; ``url`` is the API base: ``/androidpublisher/v3/...`` and
    ``/token`` live under it. ``requests()`` lists the ``/token`` and API calls."""

    ADMIN = "/_google"

    def __init__(self, url: str, session: requests.Session | None = None):
        super().__init__(url, session)
        self.token_uri = f"{url}/token"

    def purchases_url(self, package: str = DEFAULT_PACKAGE) -> str:
        return f"{self.url}/androidpublisher/v3/applications/{package}/purchases"

    def service_account(self, **kw) -> dict:
        """Register a service account; without ``public_key_pem`` the fake makes the key and
        answers the whole service-account JSON (``private_key``, ``token_uri`` = this fake)."""
        return self._call("POST", "/service_accounts", kw)

    def credentials(self, info: dict | None = None, scopes=SCOPES):
        return service_account.Credentials.from_service_account_info(
            info or self.service_account(), scopes=scopes)

    def authorized_session(self, info: dict | None = None, scopes=SCOPES) -> AuthorizedSession:
        """google-auth's AuthorizedSession on these credentials, kept on loopback: no proxy from
        the environment (API calls and token refreshes), and google-auth's own https calls to
        Google refused (``session.no_https.refused`` lists them)."""
        auth_http = requests.Session()
        auth_http.trust_env = False
        no_https = NoHttpsAdapter()
        auth_http.mount("https://", no_https)
        session = AuthorizedSession(self.credentials(info, scopes),
                                    auth_request=Request(auth_http))
        session.trust_env = False
        session.no_https = no_https
        return session

    def product(self, **kw) -> dict:
        """Create a one-time purchase: ``productId`` (+``quantity``) or ``lineItems: [{productId,
        quantity, refundableQuantity?, offerId?, purchaseOptionId?}]``, ``packageName``,
        ``token``, ``state`` (PURCHASED|PENDING|CANCELLED), ``test``, ``orderId``,
        ``obfuscatedExternalAccountId``, ...; answers the stored purchase (``token``,
        ``orderId``, ``purchaseTimeMillis``, ...)."""
        return self._call("POST", "/products", kw)

    def update_product(self, token: str, **kw) -> dict:
        return self._call("PATCH", f"/products/{token}", kw)

    def get_product(self, token: str) -> dict:
        return self._call("GET", f"/products/{token}")

    def subscription(self, **kw) -> dict:
        return self._call("POST", "/subscriptions", kw)

    def update_subscription(self, token: str, **kw) -> dict:
        return self._call("PATCH", f"/subscriptions/{token}", kw)

    def get_subscription(self, token: str) -> dict:
        return self._call("GET", f"/subscriptions/{token}")

    def renew(self, token: str, **kw) -> dict:
        """A renewal: ``latestOrderId`` becomes ``<first order>..0``, ``..1``, ...; the expiry
        moves ``periodDays`` (30) on, or to ``expiryTime``."""
        return self._call("POST", f"/subscriptions/{token}/renew", kw)

    def void(self, purchaseToken: str, **kw) -> dict:  # noqa: N803  (Google's field name)
        """Refund/charge back: ``orderId``, ``voidedQuantity`` (a quantity-based partial refund),
        ``voidedReason`` (0..7), ``voidedSource`` (0..2), ``voidedTimeMillis``, ``productId``."""
        return self._call("POST", "/voided", {"purchaseToken": purchaseToken, **kw})

    def expire_tokens(self) -> int:
        """Make every access token issued so far invalid (the API answers 401 to them)."""
        return self._call("POST", "/tokens/expire")["expired"]


@pytest.fixture(scope="session")
def google_api_url():
    """Base URL of a fake Google Play API served in a thread for the whole test session."""
    with serve(create_google_app()) as url:
        yield url


@pytest.fixture
def google_fake(google_api_url):
    """The fake's admin client, with accounts, tokens, purchases, faults and the log reset."""
    yield from GoogleFake(google_api_url).fresh()
