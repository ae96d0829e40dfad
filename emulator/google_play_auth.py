"""The fake Google Play API's OAuth side (emulator/google_play_api.py): registered service
accounts (public keys), the JWT-bearer grant google-auth's service-account flow sends to
``token_uri``, and the access tokens it hands out.

An assertion is accepted when its ``iss`` is a registered ``client_email``, its RS256 signature
verifies with one of that account's keys (the header's ``kid`` picks it when present), its ``aud``
is this fake's own token URL or one of Google's (google-auth 2.x always puts
``https://oauth2.googleapis.com/token`` there, whatever ``token_uri`` says), it is live
(``iat``/``exp``, at most one hour apart) and it asks for a scope. Refusals use Google's OAuth
error shape ``{"error": "invalid_grant", "error_description": ...}`` (400).
"""
from __future__ import annotations

import base64
import json
import secrets
import string
import threading
import time

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from google.auth import crypt

from emulator.google_play_wire import GoogleError, bad, fields, typed

SCOPE = "https://www.googleapis.com/auth/androidpublisher"
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
GOOGLE_AUDIENCES = ("https://oauth2.googleapis.com/token",
                    "https://www.googleapis.com/oauth2/v4/token",
                    "https://accounts.google.com/o/oauth2/token")
CLOCK_SKEW = 60
DEFAULT_PROJECT = "kraty-bridge-test"
ACCOUNT_FIELDS = {"client_email", "public_key_pem", "private_key_id", "project_id"}
MISSING_CREDENTIALS = ("Request is missing required authentication credential. Expected OAuth 2 "
                       "access token, login cookie or other valid authentication credential. See "
                       "https://developers.google.com/identity/sign-in/web/devconsole-project.")
INVALID_CREDENTIALS = ("Request had invalid authentication credentials. Expected OAuth 2 access "
                       "token, login cookie or other valid authentication credential. See "
                       "https://developers.google.com/identity/sign-in/web/devconsole-project.")
SHORT_LIVED = ("Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable "
               "timeframe. Check your iat and exp values in the JWT claim.")


class OAuthError(Exception):
    """A token endpoint refusal: ``{"error": ..., "error_description": ...}``."""

    def __init__(self, status: int, error: str, description: str):
        super().__init__(description)
        self.status, self.error, self.description = status, error, description

    def body(self) -> dict:
        return {"error": self.error, "error_description": self.description}


def _b64decode(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def _unauthenticated(message: str) -> GoogleError:
    return GoogleError(401, message, "authError", headers={
        "WWW-Authenticate": 'Bearer realm="https://accounts.google.com/", error="invalid_token"'})


class Accounts:
    """Service accounts (``client_email`` -> {key id: PEM}) and issued access tokens."""

    def __init__(self, token_lifetime: int = 3600):
        self.token_lifetime = token_lifetime
        self.lock = threading.Lock()
        self.spare_keys: list = []  # RSA keys generated so far, reused after a reset (slow to make)
        self.reset()

    def reset(self) -> None:
        with self.lock:
            self.accounts: dict[str, dict[str, str]] = {}
            self.tokens: dict[str, dict] = {}
            self.keys_used = 0

    def register(self, body, token_uri: str) -> dict:
        """Register a key for an account; without ``public_key_pem`` make one and answer the
        full service-account JSON (with ``private_key``) google-auth loads."""
        fields(body, ACCOUNT_FIELDS, "the body")
        project = typed(body, "project_id", str, DEFAULT_PROJECT)
        email = (typed(body, "client_email", str)
                 or f"kraty-bridge@{project}.iam.gserviceaccount.com")
        key_id = typed(body, "private_key_id", str) or secrets.token_hex(20)
        info = {"type": "service_account", "project_id": project, "private_key_id": key_id}
        public_pem = typed(body, "public_key_pem", str)
        if public_pem is not None:
            try:
                data = public_pem.encode()
                pubkey = (x509.load_pem_x509_certificate(data).public_key()
                          if b"-----BEGIN CERTIFICATE-----" in data
                          else serialization.load_pem_public_key(data))
            except (ValueError, TypeError) as err:
                raise bad(f"public_key_pem is not a PEM public key or certificate: {err}")
            if not isinstance(pubkey, rsa.RSAPublicKey):
                raise bad("public_key_pem must be an RSA key")
        else:
            key = self._key()
            info["private_key"] = key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption()).decode()
            public_pem = key.public_key().public_bytes(
                serialization.Encoding.PEM,
                serialization.PublicFormat.SubjectPublicKeyInfo).decode()
        with self.lock:
            self.accounts.setdefault(email, {})[key_id] = public_pem
        info.update(client_email=email,
                    client_id="".join(secrets.choice(string.digits) for _ in range(21)),
                    auth_uri="https://accounts.google.com/o/oauth2/auth", token_uri=token_uri)
        return info

    def _key(self):
        with self.lock:
            index = self.keys_used
            self.keys_used += 1
            if index < len(self.spare_keys):
                return self.spare_keys[index]
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        with self.lock:
            self.spare_keys.append(key)
        return key

    def grant(self, form, own_token_uri: str) -> dict:
        """The JWT-bearer grant: verify the assertion, answer a Bearer access token."""
        grant_type = form.get("grant_type")
        if grant_type != JWT_BEARER:
            raise OAuthError(400, "unsupported_grant_type", f"Invalid grant_type: {grant_type}")
        assertion = form.get("assertion")
        if not assertion:
            raise OAuthError(400, "invalid_request", "Missing required parameter: assertion")
        header, claims = self._verified(assertion)
        now = time.time()
        iat, exp = claims.get("iat"), claims.get("exp")
        if (not isinstance(iat, (int, float)) or not isinstance(exp, (int, float))
                or exp <= now - CLOCK_SKEW or iat > now + CLOCK_SKEW or exp - iat > 3600):
            raise OAuthError(400, "invalid_grant", SHORT_LIVED)
        if claims.get("aud") not in (own_token_uri, *GOOGLE_AUDIENCES):
            raise OAuthError(400, "invalid_grant", "Invalid JWT: Failed audience check. The "
                             f"right audience is {GOOGLE_AUDIENCES[0]} or {own_token_uri}")
        scopes = str(claims.get("scope") or "").split()
        if not scopes:
            raise OAuthError(400, "invalid_scope", "Empty or missing scope not allowed.")
        token = "ya29.fake-" + secrets.token_urlsafe(48)
        with self.lock:
            self.tokens[token] = {"email": claims["iss"], "scopes": frozenset(scopes),
                                  "expiry": now + self.token_lifetime}
        return {"access_token": token, "expires_in": self.token_lifetime, "token_type": "Bearer"}

    def _verified(self, assertion: str) -> tuple[dict, dict]:
        try:
            head, body, signature = assertion.split(".")
            header, claims = json.loads(_b64decode(head)), json.loads(_b64decode(body))
            sig = _b64decode(signature)
            if not isinstance(header, dict) or not isinstance(claims, dict):
                raise ValueError
        except (ValueError, TypeError):
            raise OAuthError(400, "invalid_grant", "Invalid JWT: not a well-formed JWT.")
        if header.get("alg") != "RS256":
            raise OAuthError(400, "invalid_grant", "Invalid JWT: the algorithm must be RS256.")
        with self.lock:
            keys = dict(self.accounts.get(claims.get("iss"), {}))
        if not keys:
            raise OAuthError(400, "invalid_grant", "Invalid grant: account not found")
        if header.get("kid") in keys:
            keys = {header["kid"]: keys[header["kid"]]}
        signed = f"{head}.{body}".encode()
        if not any(crypt.RSAVerifier.from_string(pem).verify(signed, sig) for pem in keys.values()):
            raise OAuthError(400, "invalid_grant", "Invalid JWT Signature.")
        return header, claims

    def check(self, authorization: str) -> dict:
        """The access token's record, or Google's 401 (none / unknown / expired) or 403 (scope)."""
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise _unauthenticated(MISSING_CREDENTIALS)
        with self.lock:
            record = self.tokens.get(token.strip())
        if record is None or record["expiry"] <= time.time():
            raise _unauthenticated(INVALID_CREDENTIALS)
        if SCOPE not in record["scopes"]:
            raise GoogleError(403, "Request had insufficient authentication scopes.",
                              "insufficientPermissions", "PERMISSION_DENIED")
        return record

    def expire_tokens(self) -> int:
        with self.lock:
            for record in self.tokens.values():
                record["expiry"] = 0
            return len(self.tokens)
