"""Google's Android Publisher API v3, through google-auth: the truth about a purchase token.

A Play notification only says that something changed; the purchase itself (state, products,
quantities, the player the game named, test or not) is read here, with the game's service account
(``service_account.Credentials`` + ``AuthorizedSession``). The API base and the token endpoint are
configurable (KB_GOOGLE_API_BASE, KB_GOOGLE_TOKEN_URI) so tests and ``make run`` use a local fake.
"""
from __future__ import annotations

import os
import threading
from urllib.parse import quote

import requests
from google.auth.exceptions import GoogleAuthError, RefreshError, TransportError
from google.auth.transport.requests import AuthorizedSession, Request
from google.oauth2 import service_account

from config.catalog import Game

from middleware.stores.errors import StoreError

SCOPE = "https://www.googleapis.com/auth/androidpublisher"


class GooglePlayApi:
    def __init__(self, api_base: str, token_uri: str | None, timeout: float):
        self.api_base, self.token_uri, self.timeout = api_base.rstrip("/"), token_uri or None, timeout
        self._local = threading.local()

    def _session(self, game: Game) -> AuthorizedSession:
        sessions = getattr(self._local, "sessions", None)
        if sessions is None or self._local.pid != os.getpid():  # one session per thread and process
            sessions = self._local.sessions = {}
            self._local.pid = os.getpid()
        session = sessions.get(game.namespace)
        if session is None:
            info = dict(game.google_play.service_account_info)
            if self.token_uri:
                info["token_uri"] = self.token_uri
            credentials = service_account.Credentials.from_service_account_info(info, scopes=[SCOPE])
            refresh = requests.Session()
            refresh.trust_env = False  # the token endpoint is reached like the API: no proxy from the environment
            session = AuthorizedSession(credentials, auth_request=Request(refresh))
            session.trust_env = False
            sessions[game.namespace] = session
        return session

    def _url(self, game: Game, path: str) -> str:
        package = quote(game.google_play.package_name, safe="")
        return f"{self.api_base}/androidpublisher/v3/applications/{package}/purchases/{path}"

    def _call(self, game: Game, method: str, path: str, what: str, url: str | None = None, **kw) -> dict:
        try:
            response = self._session(game).request(method, url or self._url(game, path), timeout=self.timeout, **kw)
        except (requests.RequestException, TransportError) as exc:
            raise StoreError(f"Google Play: {what}: {exc.__class__.__name__}", transient=True,
                             code="google_unreachable") from exc
        except RefreshError as exc:  # the token endpoint: down (retryable) or refusing the service account
            raise StoreError(f"Google Play: {what}: no access token: {exc}", transient=bool(exc.retryable),
                             code="google_token") from exc
        except GoogleAuthError as exc:
            raise StoreError(f"Google Play: {what}: credentials refused: {exc}", transient=False,
                             code="google_auth") from exc
        status = response.status_code
        if status < 300:
            return response.json() if response.content else {}
        message = f"Google Play: {what}: HTTP {status} {_message(response)}"
        if status == 429 or status >= 500:
            retry_after = response.headers.get("Retry-After")
            raise StoreError(message, transient=True, code=f"google_{status}", status=status,
                             retry_after=float(retry_after) if retry_after and retry_after.isdigit() else None)
        code = {404: "google_not_found", 401: "google_auth", 403: "google_auth"}.get(status, f"google_{status}")
        raise StoreError(message, transient=False, code=code, status=status)

    def product(self, game: Game, token: str) -> dict:
        """productsv2: line items, purchase state, test context, obfuscated account id."""
        return self._call(game, "GET", f"productsv2/tokens/{quote(token, safe='')}", f"purchase {token[:24]}…")

    def subscription(self, game: Game, token: str) -> dict:
        return self._call(game, "GET", f"subscriptionsv2/tokens/{quote(token, safe='')}",
                          f"subscription {token[:24]}…")

    def consume(self, game: Game, sku: str, token: str) -> dict:
        return self._call(game, "POST", f"products/{quote(sku, safe='')}/tokens/{quote(token, safe='')}:consume",
                          f"consume {sku}")

    def acknowledge(self, game: Game, sku: str, token: str, subscription: bool = False) -> dict:
        kind = "subscriptions" if subscription else "products"
        return self._call(game, "POST", f"{kind}/{quote(sku, safe='')}/tokens/{quote(token, safe='')}:acknowledge",
                          f"acknowledge {sku}", json={})

    def refund_order(self, game: Game, order_id: str, revoke: bool) -> dict:
        """``orders.refund``: ``POST .../applications/{package}/orders/{orderId}:refund?revoke=`` (an empty answer)."""
        package = quote(game.google_play.package_name, safe="")
        url = f"{self.api_base}/androidpublisher/v3/applications/{package}/orders/{quote(order_id, safe='')}:refund"
        return self._call(game, "POST", "", f"refund of order {order_id}", params={"revoke": str(revoke).lower()},
                          url=url)

    def voided(self, game: Game, start_ms: int, end_ms: int, page_token: str | None = None) -> dict:
        params = {"startTime": start_ms, "endTime": end_ms, "maxResults": 1000, "type": 1,
                  "includeQuantityBasedPartialRefund": "true"}
        if page_token:
            params["token"] = page_token
        return self._call(game, "GET", "voidedpurchases", "voided purchases", params=params)


def _message(response) -> str:
    try:
        return str(response.json().get("error", {}).get("message", ""))[:300]
    except ValueError:
        return response.text[:300]
