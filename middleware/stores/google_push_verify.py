"""Pub/Sub push authentication for Google Play notifications: the ``Authorization: Bearer <OIDC JWT>``
that a push subscription with authentication sends, signed by Google (RS256).

``PushVerifier`` (one per app) checks, in this order: the header's shape, the algorithm (RS256), the key
id, the signature, ``iat``/``exp`` (with ``leeway_seconds``), ``aud`` (one of the games'
``push_audience``), ``iss`` (``accounts.google.com`` or ``https://accounts.google.com``), ``email`` (one of
the games' ``push_service_account``) and ``email_verified`` (true) — what
``google.oauth2.id_token.verify_token`` does, plus the claims Pub/Sub's documentation asks for.

The keys come from ``KB_GOOGLE_CERTS_URL`` (``{kid: PEM certificate}``) through ``CachingRequest``, a
``google.auth.transport.Request`` that keeps the certs response for its ``Cache-Control`` max-age, so
``id_token.verify_token(token, CachingRequest(...), audience=..., certs_url=...)`` would fetch once per
max-age too. It is not called per request, though: it (and ``google.auth.jwt.decode``) parse the JSON
and every PEM certificate on each call. Instead each fetched certs document is turned once into
``google.auth.crypt.RSAVerifier`` objects (google-auth's own RS256 verifier), and a token is checked
against them with the same rules as ``google.auth.jwt.decode``; tests compare the two on valid and
invalid tokens. A token with an unknown key id makes one early re-fetch (Google rotates keys) at most
every ``min_refresh_seconds``.
"""
from __future__ import annotations

import base64
import json
import re
import threading
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass

import requests
from google.auth import crypt, exceptions, transport
from google.auth.transport import requests as google_requests

from config.catalog import Catalog, Game
from config.google_play_config import GooglePlayConfig

__all__ = [
    "GOOGLE_ISSUERS", "UNAUTHENTICATED", "UNAVAILABLE", "CachingRequest", "PushVerificationError", "PushVerifier",
    "accepts_push", "games_for_push", "push_audiences", "push_service_accounts",
]

GOOGLE_ISSUERS = frozenset({"accounts.google.com", "https://accounts.google.com"})
UNAUTHENTICATED, UNAVAILABLE = "unauthenticated", "unavailable"
DEFAULT_MAX_AGE = 300.0  # seconds a certs response without a usable Cache-Control max-age is kept
LONGEST_MAX_AGE = 86_400.0
_JWT = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\Z")  # compact JWS, unpadded base64url
_MAX_TOKEN = 8192


class PushVerificationError(Exception):
    """``kind``: "unauthenticated" (answer 401) or "unavailable" (the certs could not be fetched: answer
    503 so Pub/Sub redelivers). ``reason``: a short code for logs and metrics (missing, garbled,
    algorithm, unknown_kid, signature, not_yet_valid, expired, audience, issuer, email, email_unverified,
    certs)."""

    def __init__(self, kind: str, reason: str, message: str):
        super().__init__(message)
        self.kind, self.reason, self.message = kind, reason, message


def _refuse(reason: str, message: str) -> PushVerificationError:
    return PushVerificationError(UNAUTHENTICATED, reason, message)


# ---------------------------------------------------------------- fetching the certs, as their cache headers allow
@dataclass(frozen=True)
class _Stored:
    status: int
    headers: Mapping[str, str]
    data: bytes
    fetched_at: float
    expires_at: float


def cache_seconds(headers: Mapping[str, str], default: float = DEFAULT_MAX_AGE) -> float:
    """How long a response may be reused: ``Cache-Control`` max-age minus ``Age``; 0 for no-store /
    no-cache; ``default`` when there is no max-age."""
    lower = {str(k).lower(): str(v) for k, v in headers.items()}
    directives = [part.strip().lower() for part in lower.get("cache-control", "").split(",")]
    if "no-store" in directives or "no-cache" in directives:
        return 0.0
    for directive in directives:
        name, _, value = directive.partition("=")
        if name.strip() == "max-age" and value.strip().strip('"').isdigit():
            age = lower.get("age", "0").strip()
            return max(0.0, min(float(value.strip().strip('"')), LONGEST_MAX_AGE) - (float(age) if age.isdigit() else 0.0))
    return default


class CachingRequest(transport.Request):
    """A ``google.auth.transport.Request`` that answers GETs of ``cached_urls`` from memory while their
    last successful (200) response is fresh (``cache_seconds``); errors are never kept. Other calls go
    to ``inner`` (default ``google.auth.transport.requests.Request``). Thread-safe: concurrent callers
    of a stale URL wait for one fetch."""

    def __init__(self, cached_urls: Collection[str], inner: transport.Request | None = None, *,
                 clock: Callable[[], float] = time.time, default_max_age: float = DEFAULT_MAX_AGE,
                 timeout: float = 10.0, session: requests.Session | None = None):
        self._urls = frozenset(cached_urls)
        self._inner = inner or google_requests.Request(session)
        self._clock, self._default, self._timeout = clock, default_max_age, timeout
        self._stored: dict[str, _Stored] = {}
        self._lock = threading.Lock()
        self.fetches = 0  # responses fetched for cached URLs (tests and benchmarks)

    def __call__(self, url, method="GET", body=None, headers=None, timeout=None, **kwargs):
        if method.upper() != "GET" or url not in self._urls or body is not None:
            return self._inner(url, method=method, body=body, headers=headers, timeout=timeout or self._timeout,
                               **kwargs)
        stored = self._stored.get(url)
        if stored is not None and self._clock() < stored.expires_at:
            return stored
        with self._lock:
            stored = self._stored.get(url)
            now = self._clock()
            if stored is not None and now < stored.expires_at:
                return stored
            self.fetches += 1
            response = self._inner(url, method="GET", headers=headers, timeout=timeout or self._timeout, **kwargs)
            if response.status != 200:
                return response
            fresh = _Stored(response.status, dict(response.headers), response.data, now,
                            now + cache_seconds(response.headers, self._default))
            self._stored[url] = fresh
            return fresh

    def invalidate(self, url: str, fetched_before: float) -> None:
        """Forget ``url``'s response if it was fetched before ``fetched_before``."""
        with self._lock:
            stored = self._stored.get(url)
            if stored is not None and stored.fetched_at < fetched_before:
                del self._stored[url]


# ---------------------------------------------------------------- the verifier
def _segment(text: str):
    return json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode())


class PushVerifier:
    """Verifies Pub/Sub push OIDC tokens against the keys at ``certs_url``. Built once per app."""

    def __init__(self, certs_url: str, *, request: CachingRequest | None = None, clock: Callable[[], float] = time.time,
                 leeway_seconds: int = 30, min_refresh_seconds: float = 60.0, default_max_age: float = DEFAULT_MAX_AGE,
                 timeout: float = 10.0, session: requests.Session | None = None):
        self.certs_url = certs_url
        self.request = request or CachingRequest({certs_url}, clock=clock, default_max_age=default_max_age,
                                                 timeout=timeout, session=session)
        self._clock, self._leeway, self._min_refresh = clock, leeway_seconds, min_refresh_seconds
        self._keys: tuple[object, float, dict[str, crypt.RSAVerifier]] | None = None  # (response, fetched_at, keys)
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings, **kwargs) -> PushVerifier:
        return cls(settings.google_certs_url, **kwargs)

    def _verifiers(self) -> tuple[float, dict[str, crypt.RSAVerifier]]:
        """(when fetched, {kid: verifier}) for the current certs response, parsed once per response."""
        try:
            response = self.request(self.certs_url, method="GET")
        except exceptions.TransportError as exc:
            raise PushVerificationError(UNAVAILABLE, "certs", f"cannot fetch the push token keys: {exc}") from None
        if response.status != 200:
            raise PushVerificationError(UNAVAILABLE, "certs",
                                        f"cannot fetch the push token keys: {self.certs_url} answered {response.status}")
        known = self._keys
        if known is not None and known[0] is response:
            return known[1], known[2]
        with self._lock:
            if self._keys is not None and self._keys[0] is response:
                return self._keys[1], self._keys[2]
            try:
                document = json.loads(response.data)
            except (ValueError, RecursionError):
                document = None
            keys = {}
            for kid, pem in (document.items() if isinstance(document, dict) else ()):
                try:
                    keys[kid] = crypt.RSAVerifier.from_string(pem)
                except (ValueError, TypeError, exceptions.GoogleAuthError):
                    continue  # a key we cannot use is as good as absent
            if not keys:
                raise PushVerificationError(UNAVAILABLE, "certs", f"{self.certs_url} holds no {{key id: PEM certificate}}")
            fetched_at = getattr(response, "fetched_at", self._clock())
            self._keys = (response, fetched_at, keys)
            return fetched_at, keys

    def _candidates(self, kid) -> list[crypt.RSAVerifier]:
        fetched_at, keys = self._verifiers()
        if kid is None:  # google.auth.jwt.decode tries every key then
            return list(keys.values())
        if not isinstance(kid, str):
            raise _refuse("unknown_kid", "the token's key id is not a string")
        if kid not in keys and self._clock() - fetched_at >= self._min_refresh:
            self.request.invalidate(self.certs_url, fetched_before=fetched_at + 1e-6)
            fetched_at, keys = self._verifiers()
        if kid not in keys:
            raise _refuse("unknown_kid", "the token is signed with a key Google does not publish")
        return [keys[kid]]

    def verify(self, authorization_header: str | None, audiences: Collection[str],
               service_accounts: Collection[str]) -> dict:
        """The verified claims of a push request's ``Authorization`` header, or ``PushVerificationError``.
        ``audiences`` / ``service_accounts``: every accepted ``aud`` / ``email`` (``push_audiences`` and
        ``push_service_accounts`` of the catalog); ``accepts_push`` then says which game's they are."""
        if not authorization_header:
            raise _refuse("missing", "the Authorization header is missing")
        scheme, _, token = authorization_header.partition(" ")
        token = token.strip(" ")
        if scheme.lower() != "bearer" or len(token) > _MAX_TOKEN or not _JWT.match(token):
            raise _refuse("garbled", "the Authorization header is not a Bearer JWT")
        head, body, signature_b64 = token.split(".")
        try:
            header, claims = _segment(head), _segment(body)
            signature = base64.urlsafe_b64decode(signature_b64 + "=" * (-len(signature_b64) % 4))
        except (ValueError, RecursionError):
            raise _refuse("garbled", "the bearer token is not a JWT of JSON objects") from None
        if not isinstance(header, dict) or not isinstance(claims, dict):
            raise _refuse("garbled", "the bearer token is not a JWT of JSON objects")
        if header.get("alg") != "RS256":
            raise _refuse("algorithm", "the token is not signed with RS256")
        signed = f"{head}.{body}".encode()
        if not any(key.verify(signed, signature) for key in self._candidates(header.get("kid"))):
            raise _refuse("signature", "the token's signature does not verify")
        self._check_claims(claims, audiences, service_accounts)
        return claims

    def _check_claims(self, claims: dict, audiences: Collection[str], service_accounts: Collection[str]) -> None:
        now = self._clock()
        iat, exp = claims.get("iat"), claims.get("exp")
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (iat, exp)):
            raise _refuse("garbled", "the token has no numeric iat and exp")
        if now < iat - self._leeway:
            raise _refuse("not_yet_valid", "the token was issued in the future")
        if exp + self._leeway < now:
            raise _refuse("expired", "the token has expired")
        if not isinstance(claims.get("aud"), str) or claims["aud"] not in audiences:
            raise _refuse("audience", "the token's audience is not a game's google_play.push_audience")
        if claims.get("iss") not in GOOGLE_ISSUERS:
            raise _refuse("issuer", "the token was not issued by accounts.google.com")
        if not isinstance(claims.get("email"), str) or claims["email"] not in service_accounts:
            raise _refuse("email", "the token's email is not a game's google_play.push_service_account")
        if claims.get("email_verified") is not True:
            raise _refuse("email_unverified", "the token's email is not verified")


# ---------------------------------------------------------------- which games a push is for
def push_audiences(catalog: Catalog) -> frozenset[str]:
    return frozenset(game.google_play.push_audience for game in catalog.google_play_games())


def push_service_accounts(catalog: Catalog) -> frozenset[str]:
    return frozenset(game.google_play.push_service_account for game in catalog.google_play_games())


def accepts_push(config: GooglePlayConfig | None, claims: Mapping) -> bool:
    """Whether verified claims are this game's push subscription's: its audience and its service account."""
    return (config is not None and claims.get("aud") == config.push_audience
            and claims.get("email") == config.push_service_account)


def games_for_push(catalog: Catalog, claims: Mapping) -> list[Game]:
    """The games whose push subscription the verified claims are (several when games share one
    subscription; then the notification's packageName picks among them)."""
    return [game for game in catalog.google_play_games() if accepts_push(game.google_play, claims)]
