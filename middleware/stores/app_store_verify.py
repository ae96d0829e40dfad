"""App Store signed data — Server Notifications V2 and StoreKit 2 transactions — verified with Apple's
app-store-server-library (``SignedDataVerifier``).

``AppStoreVerifiers`` holds one verifier per (game, environment) the catalog accepts. A JWS payload is
read without verification only to find its ``bundleId`` and ``environment``; that game's verifier for
that environment then checks everything: the x5c chain up to the configured roots in strict mode as of
the payload's ``signedDate`` (or now, with OCSP, when online checks are on), Apple's two certificate
OIDs, ``alg`` ES256, the signature, the bundle id, the environment and (Production) the app Apple id.
A notification's nested ``signedTransactionInfo`` is verified the same way. Production verifiers
trust only the pinned roots (``config.app_store_config.check_pins``).

Three things make a verification cheaper without skipping any check (see ``_CachingChainVerifier`` in ``app_store_chain`` and
``_Verifier._decode_signed_object``): a chain that verified is remembered with the time window in
which every certificate of it is valid, so the same x5c is accepted again only for an effective date
inside that window; a JWS of the plain shape Apple sends is parsed once — the parse that picked the
game is handed to the verifier (``_Verifier.check``) — and its ES256 signature checked directly, as the
library's PyJWT calls would (anything else takes the library's own path); and the decoded JWS header,
the same x5c chain on everything Apple signs, is remembered by its exact text (``middleware.stores.jws``).
"""
from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from appstoreserverlibrary.models.Environment import Environment
from appstoreserverlibrary.signed_data_verifier import SignedDataVerifier, VerificationException, VerificationStatus
from cattrs.errors import BaseValidationError
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from config.app_store_config import parse_fingerprints, pin_problems
from config.catalog import Catalog, CatalogError, Game

from middleware.stores.jws import Jws, NotAJws, read
from middleware.stores.app_store_chain import _CachingChainVerifier, _public_key

__all__ = ["AppStoreVerificationError", "AppStoreVerifiers", "VerifiedNotification", "VerifiedTransaction"]

MALFORMED, UNVERIFIED, RETRYABLE, NOT_ACCEPTED = "malformed", "unverified", "retryable", "not_accepted"
ENVIRONMENTS = {"Production": Environment.PRODUCTION, "Sandbox": Environment.SANDBOX}
REASONS = {
    VerificationStatus.VERIFICATION_FAILURE: "the signature or the certificate chain did not verify",
    VerificationStatus.INVALID_APP_IDENTIFIER: "the bundle id or app Apple id is not the game's",
    VerificationStatus.INVALID_CERTIFICATE: "a certificate of the chain could not be read",
    VerificationStatus.INVALID_CHAIN_LENGTH: "x5c must hold exactly three certificates",
    VerificationStatus.INVALID_CHAIN: "the certificate chain is invalid",
    VerificationStatus.INVALID_ENVIRONMENT: "the environment does not match",
    VerificationStatus.RETRYABLE_VERIFICATION_FAILURE: "Apple's OCSP responder could not be asked; try again later",
}
_REGISTERED_CLAIMS = frozenset({"exp", "nbf", "iat", "aud", "iss", "sub", "jti"})  # PyJWT validates these


class AppStoreVerificationError(Exception):
    """``kind``: "malformed" (not a JWS of JSON objects), "unverified" (the library refused it),
    "retryable" (status 7: OCSP unreachable — answer 5xx so Apple retries) or "not_accepted" (unknown
    bundle id, or an environment the game does not take). ``status``: the library's
    ``VerificationStatus`` when it decided, else None. ``detail``: the underlying cause, for logs."""

    def __init__(self, kind: str, message: str, status: VerificationStatus | None = None, detail: str | None = None):
        super().__init__(message)
        self.kind, self.message, self.status, self.detail = kind, message, status, detail
        self.retryable = kind == RETRYABLE


@dataclass(frozen=True, eq=False)
class VerifiedNotification:
    game: Game
    environment: str  # "Production" | "Sandbox"
    notification: dict  # the decoded signedPayload: notificationType, subtype, notificationUUID, signedDate, data...
    transaction: dict | None  # the decoded data.signedTransactionInfo, verified too; None when there is none


@dataclass(frozen=True, eq=False)
class VerifiedTransaction:
    game: Game
    environment: str
    transaction: dict


# ---------------------------------------------------------------- reading a JWS (no verification)
def _read(token: Any, what: str) -> Jws:
    """Split and decode a compact JWS; ``AppStoreVerificationError("malformed")`` if it is not one."""
    try:
        return read(token)
    except NotAJws as exc:
        raise AppStoreVerificationError(MALFORMED, f"{what} {exc}") from None


def _identity(payload: dict) -> tuple[Any, Any]:
    """(bundleId, environment) of a notification, wherever its kind puts them (as the library reads them)."""
    for key in ("data", "summary", "externalPurchaseToken", "appData"):
        part = payload.get(key)
        if isinstance(part, dict):
            if key == "externalPurchaseToken":
                sandbox = str(part.get("externalPurchaseId") or "").startswith("SANDBOX")
                return part.get("bundleId"), "Sandbox" if sandbox else "Production"
            return part.get("bundleId"), part.get("environment")
    return None, None


# ---------------------------------------------------------------- the library, with what may be cached
class _Verifier(SignedDataVerifier):
    """Apple's verifier with the caching chain verifier, and one parse per JWS on the usual path.

    ``_decode_signed_object`` does what the library's does — the same checks in the same order, the
    same statuses — but for a JWS of the plain shape Apple sends (canonical base64url segments, a
    header of only ``alg`` and ``x5c``, a payload without JWT registered claims) it parses once and
    checks the ES256 signature with ``cryptography`` exactly as PyJWT would (a P-256 key, 64-byte
    r||s, SHA-256), instead of letting PyJWT parse the token three times. Anything else, and the
    Xcode / LocalTesting environments, go through the library's method unchanged. Run through
    ``check``, it does not even parse: it takes the parse of that very string the caller already has.
    """

    def __init__(self, root_certificates, enable_online_checks, environment, bundle_id, app_apple_id=None):
        super().__init__(list(root_certificates), enable_online_checks, environment, bundle_id, app_apple_id)
        self._chain_verifier = _CachingChainVerifier(list(root_certificates))
        self._handed = threading.local()  # (token, its Jws) while ``check`` runs in this thread

    def check(self, verify: Callable[[str], Any], signed: str, jws: Jws) -> Any:
        """``verify`` (one of this verifier's ``verify_and_decode_*``) on ``signed``, ``jws`` being
        ``_read(signed)``: ``_decode_signed_object`` uses it for that same string object."""
        self._handed.jws = (signed, jws)
        try:
            return verify(signed)
        finally:
            self._handed.jws = None

    def _decode_signed_object(self, signed_obj: str) -> dict:
        handed = getattr(self._handed, "jws", None)
        if handed is not None and handed[0] is signed_obj:
            jws = handed[1]
        else:
            try:
                jws = _read(signed_obj, "JWS")
            except AppStoreVerificationError:
                jws = None
        if (jws is None or not jws.canonical or not set(jws.header) <= {"alg", "x5c"}
                or _REGISTERED_CLAIMS.intersection(jws.payload)
                or self._environment not in (Environment.PRODUCTION, Environment.SANDBOX)):
            return super()._decode_signed_object(signed_obj)
        try:
            x5c = jws.header.get("x5c")
            if x5c is None or len(x5c) == 0:
                raise ValueError("x5c claim was empty")
            if jws.header.get("alg") != "ES256":
                raise ValueError("Algorithm was not ES256")
            signed_date = jws.payload.get("signedDate") if jws.payload.get("signedDate") is not None \
                else jws.payload.get("receiptCreationDate")
            effective_date = time.time() if self._enable_online_checks or signed_date is None \
                else int(signed_date) // 1000
            key = _public_key(self._chain_verifier.verify_chain(x5c, self._enable_online_checks, effective_date))
            if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, ec.SECP256R1):
                raise TypeError("the leaf's key is not P-256")
            if len(jws.signature) != 64:
                raise InvalidSignature("Invalid signature")
            r, s = int.from_bytes(jws.signature[:32], "big"), int.from_bytes(jws.signature[32:], "big")
            key.verify(encode_dss_signature(r, s), jws.signing_input, ec.ECDSA(hashes.SHA256()))
            return jws.payload
        except VerificationException:
            raise
        except Exception as exc:  # the library's rule: anything else is a verification failure
            raise VerificationException(VerificationStatus.VERIFICATION_FAILURE) from exc


# ---------------------------------------------------------------- the verifiers of a catalog
def _refused(exc: VerificationException, what: str) -> AppStoreVerificationError:
    kind = RETRYABLE if exc.status == VerificationStatus.RETRYABLE_VERIFICATION_FAILURE else UNVERIFIED
    cause = exc.__cause__
    detail = f"{type(cause).__name__}: {cause}" if cause is not None else None
    reason = REASONS.get(exc.status, exc.status.name)
    return AppStoreVerificationError(kind, f"{what}: {reason} (status {int(exc.status)} {exc.status.name})",
                                     exc.status, detail)


def _check(verifier: _Verifier, verify, signed: str, jws: Jws, what: str) -> None:
    """Run one of the library's verify_and_decode methods on ``signed`` (``jws`` its parse); its decoded
    model is not used (the caller returns the JSON it read from the very same, now verified, string)."""
    try:
        verifier.check(verify, signed, jws)
    except VerificationException as exc:
        raise _refused(exc, what) from None
    except (BaseValidationError, ValueError, TypeError) as exc:  # verified, but not the shape Apple documents
        raise AppStoreVerificationError(MALFORMED, f"{what}: a field has the wrong type for Apple's model",
                                        detail=f"{type(exc).__name__}: {exc}") from None


class AppStoreVerifiers:
    """One ``SignedDataVerifier`` per (game, environment) the catalog accepts; built once per app.

    Raises ``CatalogError`` if a game takes Production data without a pinned root certificate.
    ``pinned``: fingerprints (``Settings.apple_root_sha256``).
    """

    def __init__(self, catalog: Catalog, pinned):
        problems = pin_problems(catalog, pinned)
        if problems:
            raise CatalogError(catalog.source, problems)
        allowed = parse_fingerprints(pinned)
        self._games: dict[str, Game] = {}
        self._verifiers: dict[tuple[str, str], _Verifier] = {}
        for game in catalog.app_store_games():
            config = game.app_store
            self._games[config.bundle_id] = game
            if game.allow_sandbox:
                self._verifiers[config.bundle_id, "Sandbox"] = _Verifier(
                    config.root_certificates, config.online_checks, Environment.SANDBOX, config.bundle_id,
                    config.app_apple_id)
            if config.allow_production:
                self._verifiers[config.bundle_id, "Production"] = _Verifier(
                    config.pinned_roots(allowed), config.online_checks, Environment.PRODUCTION, config.bundle_id,
                    config.app_apple_id)

    def _verifier(self, bundle_id: Any, environment: Any, what: str) -> tuple[Game, _Verifier]:
        game = self._games.get(bundle_id) if isinstance(bundle_id, str) else None
        if game is None:
            raise AppStoreVerificationError(
                NOT_ACCEPTED, f"{what}: bundleId {bundle_id!r} is not the bundle_id of any game's [app_store] table")
        if environment not in ENVIRONMENTS:
            raise AppStoreVerificationError(
                NOT_ACCEPTED, f"{what}: environment {environment!r} is not accepted (Production or Sandbox)")
        verifier = self._verifiers.get((bundle_id, environment))
        if verifier is None:
            switch = "allow_sandbox" if environment == "Sandbox" else "app_store.allow_production"
            raise AppStoreVerificationError(
                NOT_ACCEPTED, f"{what}: game {game.namespace} does not take {environment} App Store data ({switch} is false)")
        return game, verifier

    def notification(self, signed_payload: str) -> VerifiedNotification:
        """A notification's ``signedPayload``, verified, and its ``data.signedTransactionInfo`` too."""
        outer = _read(signed_payload, "signedPayload")
        bundle_id, environment = _identity(outer.payload)
        game, verifier = self._verifier(bundle_id, environment, "signedPayload")
        _check(verifier, verifier.verify_and_decode_notification, signed_payload, outer, "signedPayload")
        data = outer.payload.get("data")
        signed_transaction = data.get("signedTransactionInfo") if isinstance(data, dict) else None
        transaction = None
        if signed_transaction is not None:
            transaction = self._transaction(verifier, signed_transaction, "data.signedTransactionInfo")
        return VerifiedNotification(game, environment, outer.payload, transaction)

    def transaction(self, signed_transaction: str) -> VerifiedTransaction:
        """A StoreKit 2 signed transaction (the receipts API), verified."""
        jws = _read(signed_transaction, "signedTransaction")
        game, verifier = self._verifier(jws.payload.get("bundleId"), jws.payload.get("environment"),
                                        "signedTransaction")
        payload = self._transaction(verifier, signed_transaction, "signedTransaction", jws)
        return VerifiedTransaction(game, jws.payload["environment"], payload)

    @staticmethod
    def _transaction(verifier: _Verifier, signed: Any, what: str, jws: Jws | None = None) -> dict:
        jws = jws if jws is not None else _read(signed, what)
        _check(verifier, verifier.verify_and_decode_signed_transaction, signed, jws, what)
        return jws.payload

    def chain_cache_hits(self) -> int:
        """How many chain verifications were answered from the cache (for tests and benchmarks)."""
        return sum(v._chain_verifier.hits for v in self._verifiers.values())


def decode_recorded(signed_payload: str) -> tuple[dict, dict | None]:
    """A notification this bridge verified when it recorded it (read back from the ledger): its payload
    and its transaction's, decoded without verifying again."""
    outer = _read(signed_payload, "signedPayload")
    data = outer.payload.get("data")
    signed = data.get("signedTransactionInfo") if isinstance(data, dict) else None
    return outer.payload, (_read(signed, "data.signedTransactionInfo").payload if signed else None)
