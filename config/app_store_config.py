"""A game's App Store settings: the ``[games.<namespace>.app_store]`` table of ``catalog.toml``, and the
root-certificate pin (``KB_APPLE_ROOT_SHA256``).

A game without the table takes no App Store notifications or transactions. ``load_app_store`` checks
the table (problems come out as ``games.<ns>.app_store.<key>: problem`` lines of the catalog's
``CatalogError``), reads the root certificate files it names (DER or PEM, one certificate per file,
relative paths relative to the catalog file) and returns an immutable ``AppStoreConfig`` holding them
as DER, which is what Apple's ``SignedDataVerifier`` takes.

Pinning: Production data is only ever verified against roots whose SHA-256 fingerprint is pinned
(default: Apple Root CA - G3). ``check_pins`` lists the games that take Production data but name no
pinned root; the app refuses to start while there are any.
"""
from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from marshmallow import ValidationError, validates_schema

from config.stripe_config import PARTIAL_REFUND_POLICIES
from config.app_store_api_config import SCHEMA_FIELDS as API_FIELDS
from config.app_store_api_config import AppStoreApiConfig, load_api
from config.toml_schema import (
    read_bytes,
    StringList,
    Checked,
    Choice,
    Flag,
    StrictSchema,
    flatten_errors,
    join_path,
)

__all__ = [
    "APPLE_ROOT_CA_G3_SHA256", "PLAYER_IDS", "AppStoreConfig", "AppStoreSchema", "check_pins", "fingerprint",
    "load_app_store", "parse_fingerprints", "pin_problems",
]

APPLE_ROOT_CA_G3_SHA256 = "63343ABFB89A6A03EBB57E9B3F5FA7BE7C4F5C756F3017B3A8C488C3653E9179"
PLAYER_IDS = ("linked", "app_account_token")  # who the player is: linked by the receipts API, or the appAccountToken

BUNDLE_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9.-]{0,154}\Z")
BUNDLE_ID_RULE = "must be an app's bundle id (A-Z a-z 0-9 . -, e.g. com.example.game)"
APP_APPLE_ID_MAX = 2**63 - 1
APP_APPLE_ID_RULE = "must be a positive integer (the app's Apple ID, from App Store Connect)"
ROOTS_RULE = "must be a non-empty list of certificate file names (DER or PEM)"
FINGERPRINT_RE = re.compile(r"[0-9A-F]{64}\Z")


@dataclass(frozen=True)
class AppStoreConfig:
    """How one game takes App Store data. Hashable; ``repr`` leaves out the certificates' bytes."""

    bundle_id: str  # unique across games: a notification's bundleId picks the game
    app_apple_id: int | None  # required when allow_production (Production notifications carry it)
    allow_production: bool  # Production data accepted (Sandbox follows the game's allow_sandbox)
    root_certificates: tuple[bytes, ...] = field(repr=False)  # DER, one per file of root_paths
    root_paths: tuple[str, ...]  # the files, resolved against the catalog's directory
    online_checks: bool  # also ask Apple's OCSP responder (SignedDataVerifier enable_online_checks)
    player_ids: str  # "linked" | "app_account_token"
    partial_refunds: str = "flag"  # a prorated refund (REFUND_PRORATED): "flag" | "proportional", as Stripe's
    api: AppStoreApiConfig | None = None  # the App Store Server API key (config/app_store_api_config.py)

    def fingerprints(self) -> tuple[str, ...]:
        """Upper-case hex SHA-256 of each root certificate's DER, in file order."""
        return tuple(fingerprint(der) for der in self.root_certificates)

    def pinned_roots(self, pinned: Iterable[str]) -> tuple[bytes, ...]:
        """The root certificates (DER) whose fingerprint is pinned: the only ones Production trusts."""
        allowed = parse_fingerprints(pinned)
        return tuple(der for der in self.root_certificates if fingerprint(der) in allowed)


def fingerprint(der: bytes) -> str:
    return hashlib.sha256(der).hexdigest().upper()


def parse_fingerprints(value: str | Iterable[str]) -> frozenset[str]:
    """``"AB12..., cd34..."`` or an iterable of fingerprints -> upper-case hex; colons and blanks inside
    a fingerprint are ignored (``openssl x509 -fingerprint -sha256`` prints them). ``ValueError`` names
    the first entry that is not a SHA-256 fingerprint, or says the list is empty."""
    items = value.split(",") if isinstance(value, str) else list(value)
    out = []
    for number, item in enumerate(items, 1):
        text = re.sub(r"[\s:]", "", str(item)).upper()
        if not text and isinstance(value, str):
            continue
        if not FINGERPRINT_RE.match(text):
            raise ValueError(f"item {number} is not a SHA-256 fingerprint (64 hex digits)")
        out.append(text)
    if not out:
        raise ValueError("must list at least one SHA-256 fingerprint (64 hex digits, comma-separated)")
    return frozenset(out)


# ---------------------------------------------------------------- the table
def _is_app_apple_id(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 < value <= APP_APPLE_ID_MAX


class AppStoreSchema(StrictSchema):
    """``[games.<ns>.app_store]`` -> a dict of checked values (the files are read by ``load_app_store``)."""

    bundle_id = Checked(lambda v: isinstance(v, str) and BUNDLE_ID_RE.match(v) is not None, BUNDLE_ID_RULE,
                        required=True)
    app_apple_id = Checked(_is_app_apple_id, APP_APPLE_ID_RULE)
    allow_production = Flag(load_default=True)
    root_certificates = StringList(lambda name: bool(name.strip()), ROOTS_RULE, "must be a file name",
                                   allow_empty=False, required=True)  # read later, against the catalog's folder
    online_checks = Flag(load_default=False)
    player_ids = Choice(PLAYER_IDS, load_default="linked")
    partial_refunds = Choice(PARTIAL_REFUND_POLICIES, load_default="flag")
    locals().update(API_FIELDS)  # api_key_id, api_issuer_id, api_private_key, consumption_info...

    @validates_schema(skip_on_field_errors=False, pass_original=True)
    def _production_needs_app_id(self, data, original, **kwargs):
        if not isinstance(original, dict):
            return
        if original.get("allow_production", True) is True and "app_apple_id" not in original:
            raise ValidationError({"app_apple_id": [
                "is required while allow_production is true (Production data is checked against it)"]})


def _read_certificate(path: str) -> tuple[bytes | None, str | None]:
    """(DER, None) or (None, problem)."""
    raw, problem = read_bytes(path)
    if problem:
        return None, problem
    try:
        if b"-----BEGIN" in raw:
            certificates = x509.load_pem_x509_certificates(raw)
            if len(certificates) != 1:
                return None, f"{path} holds {len(certificates)} certificates; give one certificate per file"
            return certificates[0].public_bytes(serialization.Encoding.DER), None
        x509.load_der_x509_certificate(raw)
        return raw, None
    except ValueError:
        return None, f"{path} is not an X.509 certificate (DER or PEM)"


def load_app_store(raw, base_dir: str, *where: str | int) -> tuple[AppStoreConfig | None, list[tuple[str, str]]]:
    """Check one ``[app_store]`` table and read its certificate files. ``where``: the table's key path
    (``"games", "demo", "app_store"``). Returns the config (None if there were problems) and the problems."""
    try:
        data = AppStoreSchema().load(raw)
    except ValidationError as exc:
        return None, flatten_errors(exc.messages, *where)
    problems, ders, paths = [], [], []
    for index, name in enumerate(data["root_certificates"]):
        path = os.path.normpath(os.path.join(base_dir, os.path.expanduser(name.strip())))
        der, problem = _read_certificate(path)
        if problem:
            problems.append((join_path(*where, "root_certificates", index), problem))
        else:
            ders.append(der)
            paths.append(path)
    api, found = load_api(data, lambda name: os.path.normpath(os.path.join(base_dir, os.path.expanduser(name))), where)
    problems += found
    if problems:
        return None, problems
    return AppStoreConfig(
        bundle_id=data["bundle_id"], app_apple_id=data.get("app_apple_id"), allow_production=data["allow_production"],
        root_certificates=tuple(ders), root_paths=tuple(paths), online_checks=data["online_checks"],
        player_ids=data["player_ids"], partial_refunds=data["partial_refunds"], api=api,
    ), []


# ---------------------------------------------------------------- the pin (needs the settings: checked when the app is built)
def pin_problems(catalog, pinned: str | Iterable[str]) -> list[tuple[str, str]]:
    """``(key path, problem)`` for every game that takes Production App Store data while none of its
    root certificates has a pinned fingerprint."""
    allowed = parse_fingerprints(pinned)
    problems = []
    for game in catalog.games.values():
        config = game.app_store
        if config is None or not config.allow_production or config.pinned_roots(allowed):
            continue
        problems.append((
            join_path("games", game.namespace, "app_store", "root_certificates"),
            (f"game {game.namespace} takes Production App Store data (allow_production) but none of its root "
            f"certificates ({', '.join(config.root_paths)}) has a pinned SHA-256 fingerprint; expected "
            f"{' or '.join(sorted(allowed))} (KB_APPLE_ROOT_SHA256; Apple Root CA - G3, AppleRootCA-G3.cer "
            f"from apple.com/certificateauthority, is {APPLE_ROOT_CA_G3_SHA256})")))
    return problems


def check_pins(catalog, pinned: str | Iterable[str]) -> list[str]:
    """One ``file: key.path: problem`` line per game of ``catalog`` that takes Production App Store data
    without a root certificate whose fingerprint is in ``pinned``; empty when the start may go on."""
    return [f"{catalog.source}: {path}: {message}" for path, message in pin_problems(catalog, pinned)]
