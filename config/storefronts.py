"""Third-party storefronts (AccelByte-compatible fulfilment API) and their bearer tokens.

``storefronts.toml`` (see ``config/examples/storefronts.toml``)::

    [storefronts.acme]
    token_sha256 = "<hex sha256 of the token>"   # or a list, to rotate: ["<new>", "<old>"]
    namespaces = ["demo"]                        # the games this storefront may touch

Tokens are never stored in clear: ``hash_token(token)`` gives the value to write, ``new_token()``
makes a fresh one. ``Storefronts.authenticate(token)`` hashes the presented token and compares it
with every stored hash in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

from marshmallow import ValidationError

from config.catalog_schema import (
    NAME_RE,
    NAME_RULE,
    Checked,
    ConfigFileError,
    StrictSchema,
    Table,
    flatten_errors,
    join_path,
    read_toml,
)

__all__ = ["Storefront", "Storefronts", "StorefrontsError", "hash_token", "load_storefronts", "new_token"]

TOKEN_PREFIX = "kbsf_"
_SHA256_RE = re.compile(r"[0-9a-fA-F]{64}\Z")


class StorefrontsError(ConfigFileError):
    """The storefronts file is unreadable or invalid; one ``file: key.path: problem`` line per problem."""


@dataclass(frozen=True)
class Storefront:
    name: str
    namespaces: frozenset[str]

    def may_access(self, namespace: str) -> bool:
        return namespace in self.namespaces


def hash_token(token: str) -> str:
    """The hex SHA-256 of a token: what ``token_sha256`` holds."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def new_token() -> str:
    """A fresh random storefront token (``kbsf_`` + 43 URL-safe characters)."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


class Storefronts:
    """The configured storefronts; ``authenticate`` maps a presented bearer token to one of them."""

    def __init__(self, entries: Iterable[tuple[Storefront, Iterable[str]]], source: str = ""):
        """``entries``: (storefront, its token hashes in hex)."""
        self.source = source
        by_name: dict[str, Storefront] = {}
        self._hashes: list[tuple[bytes, Storefront]] = []
        for storefront, hashes in entries:
            by_name[storefront.name] = storefront
            self._hashes += [(bytes.fromhex(h), storefront) for h in hashes]
        self.storefronts: Mapping[str, Storefront] = MappingProxyType(by_name)

    def __len__(self) -> int:
        return len(self.storefronts)

    def get(self, name: str) -> Storefront | None:
        return self.storefronts.get(name)

    def authenticate(self, token: str | None) -> Storefront | None:
        """The storefront whose token this is, or None. Every stored hash is compared, whichever matches."""
        if not token or not isinstance(token, str):
            return None
        try:
            digest = hashlib.sha256(token.encode("utf-8")).digest()
        except UnicodeEncodeError:
            return None
        found = None
        for stored, storefront in self._hashes:
            if hmac.compare_digest(digest, stored):
                found = storefront
        return found


# ---------------------------------------------------------------- file schema
def _hashes(value) -> bool:
    values = [value] if isinstance(value, str) else value
    return isinstance(values, list) and bool(values) and all(isinstance(v, str) and _SHA256_RE.match(v) for v in values)


def _names(value) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(v, str) and NAME_RE.match(v) for v in value)


class StorefrontSchema(StrictSchema):
    token_sha256 = Checked(_hashes, "must be a SHA-256 hex digest (64 hex characters) or a non-empty list of them",
                           required=True)
    namespaces = Checked(_names, f"must be a non-empty list of namespaces ({NAME_RULE})", required=True)


class StorefrontsFileSchema(StrictSchema):
    storefronts = Table(StorefrontSchema, load_default=dict)


def load_storefronts(path: str | os.PathLike, known_namespaces: Iterable[str] | None = None) -> Storefronts:
    """Read and validate a storefronts TOML file; raise ``StorefrontsError`` listing every problem.

    With ``known_namespaces`` (e.g. ``catalog.games``), namespaces outside it are problems too.
    An empty file (or one without ``[storefronts.*]`` tables) is valid: no storefront can authenticate.
    """
    source = os.fspath(path)
    raw = read_toml(source, StorefrontsError)
    try:
        data = StorefrontsFileSchema().load(raw)
    except ValidationError as exc:
        raise StorefrontsError(source, flatten_errors(exc.messages)) from None
    known = None if known_namespaces is None else set(known_namespaces)
    problems, owners, entries = [], {}, []
    for name, spec in data["storefronts"].items():
        hashes = [spec["token_sha256"]] if isinstance(spec["token_sha256"], str) else spec["token_sha256"]
        hashes = [h.lower() for h in hashes]
        for h in hashes:
            owner = owners.setdefault(h, name)
            if owner != name or hashes.count(h) > 1:
                problems.append((join_path("storefronts", name, "token_sha256"),
                                 f"hash {h[:12]}... is listed more than once" if owner == name
                                 else f"hash {h[:12]}... is already a token of storefront {owner}"))
        for namespace in spec["namespaces"]:
            if known is not None and namespace not in known:
                problems.append((join_path("storefronts", name, "namespaces"), f"unknown namespace {namespace!r}"))
        entries.append((Storefront(name, frozenset(spec["namespaces"])), dict.fromkeys(hashes)))
    if problems:
        raise StorefrontsError(source, problems)
    return Storefronts(entries, source=source)
