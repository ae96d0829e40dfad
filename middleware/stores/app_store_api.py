"""The App Store Server API, through Apple's app-store-server-library (``AppStoreServerAPIClient``): the
notification history (backfill) and consumption information (answering ``CONSUMPTION_REQUEST``).

Each call is signed by the library with the game's in-app purchase key (a bearer JWT, ES256, ``kid`` the
key id, ``iss`` the issuer id, ``aud`` appstoreconnect-v1, ``bid`` the bundle id). The base URL is
Apple's for the environment unless ``KB_APPLE_API_BASE`` / ``KB_APPLE_SANDBOX_API_BASE`` point it at a
local fake (``emulator/app_store_api.py``). Errors come out as ``StoreError``: network errors, 429 and
5xx are transient.
"""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import requests
from appstoreserverlibrary.api_client import APIException, AppStoreServerAPIClient
from appstoreserverlibrary.models.ConsumptionRequest import ConsumptionRequest
from appstoreserverlibrary.models.Environment import Environment
from appstoreserverlibrary.models.NotificationHistoryRequest import NotificationHistoryRequest

from config.catalog import Game

from middleware.stores.errors import StoreError

ENVIRONMENTS = {"Production": Environment.PRODUCTION, "Sandbox": Environment.SANDBOX}


class _Client(AppStoreServerAPIClient):
    """Apple's client with a configurable base URL and the bridge's timeout."""

    def __init__(self, game: Game, environment: str, base_url: str | None, timeout: float):
        api = game.app_store.api
        super().__init__(api.private_key, api.key_id, api.issuer_id, game.app_store.bundle_id,
                         ENVIRONMENTS[environment])
        if base_url:
            self._base_url = base_url.rstrip("/")
        self._timeout = timeout

    def _execute_request(self, method, url, params, headers, json, data) -> requests.Response:
        return requests.request(method, url, params=params, headers=headers, json=json, data=data,
                                timeout=self._timeout)


class AppStoreApi:
    def __init__(self, production_base: str | None, sandbox_base: str | None, timeout: float):
        self.bases = {"Production": production_base, "Sandbox": sandbox_base}
        self.timeout = timeout

    def client(self, game: Game, environment: str) -> AppStoreServerAPIClient:
        if game.app_store is None or game.app_store.api is None:
            raise StoreError(f"game {game.namespace} has no App Store Server API key (app_store.api_key_id...)",
                             transient=False, code="app_store_no_key")
        return _Client(game, environment, self.bases[environment], self.timeout)

    def notification_history(self, game: Game, environment: str, start_ms: int, end_ms: int) -> Iterator[str]:
        """Every ``signedPayload`` Apple sent (or tried to send) between the two times, page by page."""
        client, token = self.client(game, environment), None
        request = NotificationHistoryRequest(startDate=start_ms, endDate=end_ms)
        while True:
            with _classified(f"notification history of {game.app_store.bundle_id} ({environment})"):
                page = client.get_notification_history(token, request)
            for item in page.notificationHistory or []:
                if item.signedPayload:
                    yield item.signedPayload
            token = page.paginationToken
            if not page.hasMore or not token:
                return

    def send_consumption(self, game: Game, environment: str, transaction_id: str, body: ConsumptionRequest) -> None:
        with _classified(f"consumption information for {transaction_id}"):
            self.client(game, environment).send_consumption_information(transaction_id, body)


@contextmanager
def _classified(what: str) -> Iterator[None]:
    """The library's ``APIException`` and requests' errors -> ``StoreError``."""
    try:
        yield
    except requests.RequestException as exc:
        raise StoreError(f"App Store Server API: {what}: {exc.__class__.__name__}", transient=True,
                         code="app_store_unreachable") from exc
    except APIException as exc:
        status = exc.http_status_code
        message = f"App Store Server API: {what}: HTTP {status} {exc.raw_api_error or ''} {exc.error_message or ''}"
        raise StoreError(message.strip(), transient=status == 429 or status >= 500, status=status,
                         code=f"app_store_{exc.raw_api_error or status}") from exc
