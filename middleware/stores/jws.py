"""Reading a compact JWS without verifying it: its three base64url segments decoded, its header and
payload parsed as JSON objects (``read``). ``middleware.stores.app_store_verify`` reads a signed App
Store payload this way to pick the game it is for, then hands the very same parse to that game's
verifier, which checks the chain and the signature.

Decoded headers are remembered by their exact text (a bounded LRU cache): Apple signs every
notification and transaction with the same x5c chain, so the same ~3 KB header arrives again and again,
and its decode is a pure function of its text. Only the header: the payload and the signature are
decoded for every JWS. A header dict may therefore be shared by many ``Jws``: read it, never change it.
"""
from __future__ import annotations

import binascii
import functools
import json
from dataclasses import dataclass
from typing import Any

__all__ = ["HEADER_CACHE_SIZE", "HEADER_CACHE_TEXT", "Jws", "NotAJws", "read", "segment"]

HEADER_CACHE_SIZE = 32  # distinct header texts remembered (Apple uses one chain at a time)
HEADER_CACHE_TEXT = 16_384  # longer header texts are decoded every time, never kept
_STANDARD = bytes.maketrans(b"-_", b"+/")
_ZERO_SPARE_BITS = {2: frozenset("AQgw"), 3: frozenset("AEIMQUYcgkosw048")}  # by length % 4


class NotAJws(ValueError):
    """Not a compact JWS of JSON objects; ``str()`` says why, to follow the name of what was read."""


@dataclass(frozen=True)
class Jws:
    header: dict  # possibly shared with other JWS of the same header text: read only
    payload: dict
    signing_input: bytes
    signature: bytes
    canonical: bool  # every segment is unpadded base64url that re-encodes to itself (PyJWT's own rule)


def segment(text: str) -> tuple[bytes, bool]:
    """The bytes of a base64url segment (at most two "=" of padding, not necessarily the right number),
    and whether it is canonical: unpadded, and re-encoding to itself (the spare low bits of its last
    character are zero). ``ValueError`` if it is not base64url."""
    body = text.rstrip("=")
    size = len(body) % 4
    if len(text) - len(body) > 2 or size == 1 or "+" in body or "/" in body:
        raise ValueError("not base64url")
    # strict: any character outside the alphabet is an error (UnicodeEncodeError, binascii.Error: ValueErrors)
    raw = binascii.a2b_base64(body.encode("ascii").translate(_STANDARD) + b"=" * (-size % 4), strict_mode=True)
    return raw, len(text) == len(body) and (size == 0 or body[-1] in _ZERO_SPARE_BITS[size])


def _decode_header(text: str) -> tuple[Any, bool]:
    raw, canonical = segment(text)
    return json.loads(raw), canonical


_cached_header = functools.lru_cache(maxsize=HEADER_CACHE_SIZE)(_decode_header)  # errors are never cached


def _header(text: str) -> tuple[Any, bool]:
    return _cached_header(text) if len(text) <= HEADER_CACHE_TEXT else _decode_header(text)


def read(token: Any) -> Jws:
    """Split and decode a compact JWS; ``NotAJws`` if it is not one."""
    parts = token.split(".") if isinstance(token, str) else []
    if len(parts) != 3 or not parts[0] or not parts[1]:
        raise NotAJws("is not a JWS (three base64url segments)")
    try:
        header, c1 = _header(parts[0])
        (body, c2), (signature, c3) = segment(parts[1]), segment(parts[2])
        payload = json.loads(body)
    except (ValueError, RecursionError):  # binascii.Error and UnicodeDecodeError are ValueErrors
        raise NotAJws("is not a JWS of JSON objects") from None
    if not isinstance(header, dict) or not isinstance(payload, dict):
        raise NotAJws("is not a JWS of JSON objects")
    return Jws(header, payload, f"{parts[0]}.{parts[1]}".encode(), signature, c1 and c2 and c3)
