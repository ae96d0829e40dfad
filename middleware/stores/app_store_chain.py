"""Apple's x5c chains, verified by app-store-server-library's chain verifier and remembered while every certificate
of a chain that verified is valid (``_CachingChainVerifier``); public keys parsed once (``_public_key``). Used by
``middleware.stores.app_store_verify``."""
from __future__ import annotations

import base64
import functools
import threading

from appstoreserverlibrary.signed_data_verifier import _ChainVerifier
from cryptography import x509
from cryptography.hazmat.primitives import serialization


@functools.lru_cache(maxsize=64)
def _public_key(pem: str):
    return serialization.load_pem_public_key(pem.encode())


class _CachingChainVerifier(_ChainVerifier):
    """The library's chain verifier, remembering chains that verified offline.

    Offline, the library's answer for an x5c is a pure function of the x5c strings, the configured
    roots and the effective date (the payload's signedDate), and the date only matters through the
    validity periods of the three certificates OpenSSL checks. So a chain that verified is stored with
    the intersection of those periods (one second narrower at each end) and accepted again, without
    OpenSSL, only for a date inside it; any other date, and any other x5c, is verified in full. A
    chain is only stored when its path is unambiguous (exactly one configured root can issue the
    intermediate, none the leaf). Online checks keep the library's own 15-minute cache.
    """

    SIZE = 64

    def __init__(self, root_certificates: list[bytes]):
        super().__init__(root_certificates)
        self._roots = [x509.load_der_x509_certificate(der) for der in root_certificates]
        self._windows: dict[tuple[str, ...], tuple[float, float, str]] = {}
        self._lock = threading.Lock()
        self.hits = 0

    def verify_chain(self, certificates: list[str], perform_online_checks: bool, effective_date: int) -> str:
        plain = (isinstance(certificates, list) and len(certificates) == 3
                 and all(isinstance(c, str) for c in certificates))
        if perform_online_checks or not plain:
            return super().verify_chain(certificates, perform_online_checks, effective_date)
        key = tuple(certificates)
        known = self._windows.get(key)
        if known is not None and known[0] <= effective_date < known[1]:
            self.hits += 1
            return known[2]
        public_key = self._verify_chain_without_caching(certificates=certificates, perform_online_checks=False,
                                                        effective_date=effective_date)
        window = self._window(certificates)
        if window is not None:
            with self._lock:
                self._windows.pop(key, None)
                self._windows[key] = (*window, public_key)
                while len(self._windows) > self.SIZE:
                    del self._windows[next(iter(self._windows))]
        return public_key

    def _window(self, certificates: list[str]) -> tuple[float, float] | None:
        try:
            leaf, intermediate = (x509.load_der_x509_certificate(base64.b64decode(c, validate=True))
                                  for c in certificates[:2])
        except ValueError:
            return None
        roots = [root for root in self._roots if root.subject == intermediate.issuer]
        if (leaf.issuer != intermediate.subject or len(roots) != 1
                or any(root.subject == leaf.issuer for root in self._roots)):
            return None
        chain = (leaf, intermediate, roots[0])
        start = max(c.not_valid_before_utc.timestamp() for c in chain) + 1
        end = min(c.not_valid_after_utc.timestamp() for c in chain) - 1
        return (start, end) if start < end else None
