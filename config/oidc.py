"""OpenID Connect sign-in settings for the console: the provider, the client, and how a person's groups map to
a role (``viewer`` / ``operator`` / ``admin``) and, optionally, to the games they may see.

``KB_OIDC_ROLES`` is a JSON object from a value of the role claim (``KB_OIDC_ROLE_CLAIM``, e.g. ``groups``) to a
role, or to ``{"role": ..., "namespaces": [...]}``::

    {"kb-admins": "admin", "support": "operator", "support-eu": {"role": "viewer", "namespaces": ["demo"]}}

A person gets the highest role among their groups; the games are those of the groups giving that role (every
game if one of them names none). A person none of whose groups is mapped is refused.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from urllib.parse import urlsplit

LADDER = ("viewer", "operator", "admin")
_LOOPBACK = {"127.0.0.1", "localhost", "::1"}


@dataclass(frozen=True)
class Grant:
    role: str
    namespaces: tuple[str, ...] | None   # None: every game


def parse_role_map(text: str) -> dict[str, Grant]:
    """``KB_OIDC_ROLES`` -> {claim value: Grant}; ValueError (naming what is wrong) for anything else."""
    try:
        raw = json.loads(text)
    except ValueError:
        raise ValueError("expected a JSON object such as {\"kb-admins\": \"admin\"}") from None
    if not isinstance(raw, dict) or not raw:
        raise ValueError("expected a non-empty JSON object of group -> role")
    grants = {}
    for group, value in raw.items():
        spec = {"role": value} if isinstance(value, str) else value
        if not (isinstance(spec, dict) and set(spec) <= {"role", "namespaces"} and spec.get("role") in LADDER):
            raise ValueError(f"{group!r}: expected one of {', '.join(LADDER)} or {{\"role\": ..., \"namespaces\": [...]}}")
        namespaces = spec.get("namespaces")
        if namespaces is not None and not (isinstance(namespaces, list) and namespaces
                                           and all(isinstance(ns, str) and ns for ns in namespaces)):
            raise ValueError(f"{group!r}: namespaces must be a non-empty list of game namespaces")
        grants[group] = Grant(spec["role"], None if namespaces is None else tuple(namespaces))
    return grants


def grant_for(claim_value, role_map: dict[str, Grant]) -> Grant | None:
    """The role (and games) a person's claim value (a list of groups, or one string) maps to; None: none."""
    values = claim_value if isinstance(claim_value, list) else [claim_value]
    matched = [role_map[v] for v in values if isinstance(v, str) and v in role_map]
    if not matched:
        return None
    top = max(LADDER.index(g.role) for g in matched)
    best = [g for g in matched if LADDER.index(g.role) == top]
    if any(g.namespaces is None for g in best):
        return Grant(LADDER[top], None)
    return Grant(LADDER[top], tuple(sorted({ns for g in best for ns in g.namespaces})))


def check_issuer(url: str) -> str:
    """The issuer URL without a trailing slash: https, or http to a loopback address (a local provider)."""
    parts = urlsplit(url)
    if parts.scheme == "https" and parts.hostname or parts.scheme == "http" and parts.hostname in _LOOPBACK:
        if parts.query or parts.fragment:
            raise ValueError("an issuer URL has no query or fragment")
        return url.rstrip("/")
    raise ValueError(f"expected an https:// URL (http:// only to 127.0.0.1 or localhost), got {url!r}")


def check(values: dict) -> None:
    """Raise ValueError(setting name, message) when the OIDC settings are incomplete or malformed; parse the
    role map and scopes in place."""
    names = {"oidc_issuer": "KB_OIDC_ISSUER", "oidc_client_id": "KB_OIDC_CLIENT_ID",
             "oidc_client_secret": "KB_OIDC_CLIENT_SECRET", "oidc_roles": "KB_OIDC_ROLES"}
    given = [field for field in names if values.get(field)]
    if not given:
        return
    missing = [names[field] for field in names if field not in given]
    if missing:
        raise ValueError("KB_OIDC_ISSUER", f"sign-in with OpenID Connect also needs {', '.join(missing)}")
    try:
        values["oidc_issuer"] = check_issuer(values["oidc_issuer"])
    except ValueError as exc:
        raise ValueError("KB_OIDC_ISSUER", str(exc)) from None
    try:
        parse_role_map(values["oidc_roles"])
    except ValueError as exc:
        raise ValueError("KB_OIDC_ROLES", str(exc)) from None
    scopes = values["oidc_scopes"].split()
    if "openid" not in scopes or not all(re.fullmatch(r"[\x21\x23-\x5b\x5d-\x7e]+", s) for s in scopes):
        raise ValueError("KB_OIDC_SCOPES", f"space-separated scopes including openid, got {values['oidc_scopes']!r}")
    values["oidc_scopes"] = " ".join(scopes)
    redirect = values.get("oidc_redirect_url")
    if redirect is not None and not re.fullmatch(r"https?://[^\s/?#]+/\S*", redirect):
        raise ValueError("KB_OIDC_REDIRECT_URL", f"expected the full http(s) URL registered at the provider, got "
                                                 f"{redirect!r}")
    if values.get("secret_key") is None:
        raise ValueError("KB_OIDC_ISSUER", "the console needs KB_SECRET_KEY for sign-in with OpenID Connect")
