"""A game's Google Play settings: the ``[games.<namespace>.google_play]`` table of ``catalog.toml``.

A game without the table takes no Google Play notifications or purchase tokens. ``load_google_play``
checks the table (problems come out as ``games.<ns>.google_play.<key>: problem`` lines of the
catalog's ``CatalogError``), reads the Publisher API service account (a JSON key file, relative to the
catalog file, or an environment variable holding the JSON) and returns an immutable
``GooglePlayConfig``. Problems never repeat the key's contents.

``push_audience`` and ``push_service_account`` are what the Pub/Sub push subscription puts in its
OIDC token (``aud`` and ``email``): ``middleware.stores.google_push_verify`` accepts only those.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass, field
from typing import Any

from google.auth import crypt
from marshmallow import ValidationError, validates_schema

from config.toml_schema import (
    read_bytes,
    StringList,
    NAME_RE,
    NAME_RULE,
    Checked,
    Choice,
    FromEnv,
    StrictSchema,
    flatten_errors,
    join_path,
)

__all__ = [
    "PLAYER_IDS", "GooglePlayConfig", "GooglePlaySchema", "load_google_play", "parse_service_account",
]

PLAYER_IDS = ("linked", "obfuscated_account_id")  # linked by the receipts API, or the purchase's obfuscatedExternalAccountId

PACKAGE_RE = re.compile(r"[A-Za-z][A-Za-z0-9_]*(?:\.[A-Za-z][A-Za-z0-9_]*)+\Z")
PACKAGE_RULE = "must be an Android package name (two or more dot-separated parts of A-Z a-z 0-9 _, e.g. com.example.game)"
AUDIENCE_RE = re.compile(r"\S{1,2048}\Z")
AUDIENCE_RULE = "must be the audience of the Pub/Sub push subscription (a non-empty string without spaces)"
EMAIL_RE = re.compile(r"[^@\s]{1,128}@[^@\s]{1,255}\Z")
EMAIL_RULE = "must be the e-mail address of the push subscription's service account"
FILE_RULE = "must be the name of a service account JSON key file"
NON_CONSUMABLE_RULE = "must be a list of product SKUs of this game"
TOKEN_URI_RE = re.compile(r"https?://\S+\Z")


@dataclass(frozen=True)
class GooglePlayConfig:
    """How one game takes Google Play data. Hashable; ``repr`` leaves out the service account key.

    ``service_account_info`` is the parsed JSON key (for ``service_account.Credentials.
    from_service_account_info``): treat it as read-only; ``credentials_info`` gives a copy."""

    package_name: str  # unique across games: a notification's packageName picks the game
    service_account_info: dict = field(repr=False, compare=False)
    service_account_email: str  # the key's client_email
    service_account_source: str  # the file it was read from, or "env:NAME"
    push_audience: str
    push_service_account: str
    player_ids: str  # "linked" | "obfuscated_account_id"
    non_consumable: frozenset[str]  # catalog SKUs acknowledged instead of consumed
    service_account_sha256: str = field(repr=False, default="")  # of the key's JSON: compares the key

    def credentials_info(self, token_uri: str | None = None) -> dict:
        """A copy of the service account JSON; ``token_uri`` (``Settings.google_token_uri``), when
        given, replaces the key's own (tests and ``make run`` point it at a fake)."""
        info = dict(self.service_account_info)
        if token_uri:
            info["token_uri"] = token_uri
        return info

    def consumes(self, sku: str) -> bool:
        """Whether a one-time product is consumed after granting (else acknowledged). Subscriptions
        are always acknowledged: the caller does not ask."""
        return sku not in self.non_consumable


# ---------------------------------------------------------------- the service account JSON
def parse_service_account(text: str | bytes) -> dict:
    """The JSON of a service account key, checked; ``ValueError("must ...")`` otherwise (never quoting it)."""
    try:
        info = json.loads(text)
    except (ValueError, RecursionError):
        raise ValueError("must hold a service account JSON key (it is not JSON)") from None
    if not isinstance(info, dict):  # ValueError: what FromEnv and the file check report
        raise ValueError("must hold a service account JSON key (a JSON object)")  # noqa: TRY004
    if info.get("type") != "service_account":
        raise ValueError('must hold a service account JSON key ("type": "service_account")')
    email = info.get("client_email")
    if not isinstance(email, str) or not EMAIL_RE.match(email):
        raise ValueError("must hold a service account JSON key with a client_email")
    key = info.get("private_key")
    if not isinstance(key, str) or not key.strip():
        raise ValueError("must hold a service account JSON key with a private_key")
    try:
        crypt.RSASigner.from_string(key)
    except (ValueError, TypeError):
        raise ValueError("must hold a service account JSON key whose private_key is a PEM RSA private key") from None
    token_uri = info.get("token_uri")
    if token_uri is not None and not (isinstance(token_uri, str) and TOKEN_URI_RE.match(token_uri)):
        raise ValueError("must hold a service account JSON key whose token_uri is an http(s) URL")
    return info


def _is_file_name(value) -> bool:
    return isinstance(value, str) and value.strip() != ""


class GooglePlaySchema(StrictSchema):
    """``[games.<ns>.google_play]`` -> a dict of checked values (the key file is read by ``load_google_play``)."""

    package_name = Checked(lambda v: isinstance(v, str) and PACKAGE_RE.match(v) is not None, PACKAGE_RULE,
                           required=True)
    service_account_file = Checked(_is_file_name, FILE_RULE)
    service_account_env = FromEnv(parse_service_account)
    push_audience = Checked(lambda v: isinstance(v, str) and AUDIENCE_RE.match(v) is not None, AUDIENCE_RULE,
                            required=True)
    push_service_account = Checked(lambda v: isinstance(v, str) and EMAIL_RE.match(v) is not None, EMAIL_RULE,
                                   required=True)
    player_ids = Choice(PLAYER_IDS, load_default="linked")
    non_consumable = StringList(lambda sku: NAME_RE.match(sku) is not None, NON_CONSUMABLE_RULE,
                                f"invalid SKU: {NAME_RULE}", load_default=())  # checked against the products later

    @validates_schema(skip_on_field_errors=False, pass_original=True)
    def _one_key_source(self, data, original, **kwargs):
        if isinstance(original, dict) and ("service_account_file" in original) == ("service_account_env" in original):
            raise ValidationError("exactly one of service_account_file or service_account_env is required")


def _read_key_file(path: str) -> tuple[dict | None, str | None]:
    """(info, None) or (None, problem)."""
    raw, problem = read_bytes(path)
    if problem:
        return None, problem
    try:
        return parse_service_account(raw), None
    except ValueError as exc:
        return None, f"{path} {exc}"


def load_google_play(raw: Any, base_dir: str, skus, *where: str | int
                     ) -> tuple[GooglePlayConfig | None, list[tuple[str, str]]]:
    """Check one ``[google_play]`` table and read its service account. ``skus``: the game's product
    SKUs (``non_consumable`` must name them; None when the products are malformed, which the catalog
    reports). ``where``: the table's key path. Returns the config (None if there were problems) and
    the problems."""
    try:
        data = GooglePlaySchema().load(raw)
    except ValidationError as exc:
        return None, flatten_errors(exc.messages, *where)
    problems = []
    if "service_account_file" in data:
        path = os.path.normpath(os.path.join(base_dir, os.path.expanduser(data["service_account_file"].strip())))
        info, problem = _read_key_file(path)
        if problem:
            problems.append((join_path(*where, "service_account_file"), problem))
        source = path
    else:
        info, source = data["service_account_env"], f"env:{raw['service_account_env']}"
    if skus is not None:
        for index, sku in enumerate(data["non_consumable"]):
            if sku not in skus:
                problems.append((join_path(*where, "non_consumable", index),
                                 f"unknown product {sku!r} (not in {join_path(*where[:-1], 'products')})"))
    if problems:
        return None, problems
    digest = hashlib.sha256(json.dumps(info, sort_keys=True).encode()).hexdigest()
    return GooglePlayConfig(
        package_name=data["package_name"], service_account_info=info, service_account_email=info["client_email"],
        service_account_source=source, push_audience=data["push_audience"],
        push_service_account=data["push_service_account"], player_ids=data["player_ids"],
        non_consumable=frozenset(data["non_consumable"]), service_account_sha256=digest,
    ), []
