"""The Kraty server API client: every Kraty path lives in this module.

One pooled ``requests.Session`` per process (re-created after a fork), explicit timeouts, and
every failure classified as transient (retry later) or permanent (an operator must look).
"""
from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from urllib.parse import quote, urlsplit

import requests
from opentelemetry.trace import SpanKind
from requests.adapters import HTTPAdapter

from middleware.metrics import tracing
from middleware.metrics import recorders as metrics

API_PREFIX = "/server/v1"


@dataclass
class KratyError(Exception):
    """A Kraty call that did not succeed."""

    transient: bool
    code: str                  # Kraty's error code, or timeout / connection_error / http_<status>
    message: str
    status: int | None = None
    retry_after: float | None = None

    def __str__(self) -> str:
        where = f"HTTP {self.status} " if self.status else ""
        return f"{where}{self.code}: {self.message}"


_local = threading.local()
_pid = None
_lock = threading.Lock()


def pooled_session() -> requests.Session:
    """The process's HTTP session (one per thread, so it is safe under threaded servers)."""
    global _pid
    with _lock:
        if _pid != os.getpid():
            _pid = os.getpid()
            _local.__dict__.clear()
    session = getattr(_local, "session", None)
    if session is None:
        session = requests.Session()
        # Kraty is one configured base URL: skip the per-request look-ups of proxy variables and
        # ~/.netrc that requests does otherwise (measurable on the ingest path).
        session.trust_env = False
        adapter = HTTPAdapter(pool_connections=8, pool_maxsize=32, max_retries=0)
        session.mount("http://", adapter)
        session.mount("https://", adapter)
        _local.session = session
    return session


def _segment(value: str) -> str:
    return quote(value, safe="")


def _retry_after(response: requests.Response) -> float | None:
    raw = response.headers.get("Retry-After")
    if raw is None:
        return None
    try:
        return max(0.0, float(raw))
    except ValueError:
        return None


class KratyClient:
    """Calls one game's Kraty server API with its server key."""

    def __init__(self, base_url: str, server_key: str, timeout: tuple[float, float]):
        self.base = base_url.rstrip("/") + API_PREFIX
        self.host = urlsplit(base_url).hostname or ""
        self.headers = {**requests.utils.default_headers(), "Authorization": f"Bearer {server_key}",
                        "Content-Type": "application/json"}
        self.timeout = timeout

    # -- wallet and inventory -------------------------------------------------------------
    def credit(self, player: str, currency: str, amount: int, *, reason: str, source_ref: str, key: str) -> dict:
        return self._post(f"/players/{_segment(player)}/wallet/{_segment(currency)}/credit",
                          {"amount": amount, "reason": reason, "sourceRefId": source_ref, "idempotencyKey": key})

    def debit(self, player: str, currency: str, amount: int, *, reason: str, source_ref: str, key: str,
              allow_negative: bool = False) -> dict:
        return self._post(f"/players/{_segment(player)}/wallet/{_segment(currency)}/debit",
                          {"amount": amount, "reason": reason, "sourceRefId": source_ref, "idempotencyKey": key,
                           "allowNegative": allow_negative})

    def grant_item(self, player: str, item: str, quantity: int, *, reason: str, source_ref: str, key: str) -> dict:
        return self._post(f"/players/{_segment(player)}/inventory/{_segment(item)}/grant",
                          {"quantity": quantity, "reason": reason, "sourceRefId": source_ref, "idempotencyKey": key})

    def revoke_item(self, player: str, item: str, quantity: int, *, reason: str, source_ref: str, key: str) -> dict:
        return self._post(f"/players/{_segment(player)}/inventory/{_segment(item)}/revoke",
                          {"quantity": quantity, "reason": reason, "sourceRefId": source_ref, "idempotencyKey": key})

    # -- players ----------------------------------------------------------------------------
    def make_good(self, player: str, contents, *, reason: str, key: str) -> dict:
        return self._post(f"/players/{_segment(player)}/grants",
                          {"contents": contents, "reason": reason, "idempotencyKey": key})

    def player_profile(self, player: str, limit: int = 50) -> dict:
        return self._call("GET", f"/players/{_segment(player)}", params={"limit": limit})

    def export_player(self, player: str) -> dict:
        return self._call("GET", f"/players/{_segment(player)}/export")

    def delete_player(self, player: str, reason: str) -> dict:
        return self._call("DELETE", f"/players/{_segment(player)}", json={"reason": reason})

    def merge_players(self, guest: str, into: str) -> dict:
        return self._post(f"/players/{_segment(guest)}/merge", {"into": into})

    def migrate(self, kind: str, rows: list) -> dict:
        if kind not in ("players", "wallets", "inventory"):
            raise ValueError(f"unknown migrate kind {kind!r}")
        if len(rows) > 1000:
            raise ValueError("Kraty takes at most 1,000 rows per migrate call")
        return self._post(f"/migrate/{kind}", {"rows": rows})

    # -- transport --------------------------------------------------------------------------
    def _post(self, path: str, body: dict) -> dict:
        return self._call("POST", path, json=body)

    def _call(self, method: str, path: str, **kwargs) -> dict:
        with metrics.kraty_call(method, path), tracing.span(  # kb_kraty_calls_total, kb_kraty_call_seconds
                f"kraty {metrics.kraty_operation(method, path)}", SpanKind.CLIENT,
                {"http.request.method": method, "server.address": self.host}):
            return self._send(method, path, **kwargs)

    def _prepare(self, method: str, path: str, params: dict | None = None, json=None) -> requests.PreparedRequest:
        """The request as ``Session.request`` would prepare it for Kraty, without the steps that find nothing to
        do here (cookies: Kraty sets none; credentials in the URL: the key is in a header; the session's
        settings: they are the defaults, merged into ``self.headers`` once)."""
        request = requests.PreparedRequest()
        request.prepare_method(method)
        request.prepare_url(self.base + path, params)
        request.prepare_headers(tracing.outgoing_headers(self.headers))
        request.prepare_body(None, None, json)
        request.hooks = {"response": []}
        return request

    def _send(self, method: str, path: str, **kwargs) -> dict:
        try:  # the process's pooled keep-alive session sends it, as any requests call
            response = pooled_session().send(self._prepare(method, path, **kwargs), timeout=self.timeout)
        except requests.Timeout as exc:
            raise KratyError(True, "timeout", f"Kraty did not answer in time ({exc.__class__.__name__})") from exc
        except requests.ConnectionError as exc:
            raise KratyError(True, "connection_error", f"cannot reach Kraty: {exc.__class__.__name__}") from exc
        if response.status_code == 200:
            try:
                return response.json()["data"]
            except (ValueError, KeyError, TypeError):
                raise KratyError(True, "bad_response", "Kraty answered 200 without a data object",
                                 status=200) from None
        raise classify(response)


def classify(response: requests.Response) -> KratyError:
    """Turn a non-200 answer into a KratyError: 429 and 5xx are transient, other 4xx permanent."""
    status = response.status_code
    code, message = f"http_{status}", response.reason or ""
    try:
        error = response.json().get("error") or {}
        code = str(error.get("code") or code)
        message = str(error.get("message") or message)
    except (ValueError, AttributeError):
        pass
    transient = status == 429 or status >= 500
    return KratyError(transient, code, message[:500], status=status, retry_after=_retry_after(response))
