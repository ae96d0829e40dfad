"""Pub/Sub push tokens for tests: RSA keys generated here, a local certs endpoint serving them as Google
does (``{kid: PEM certificate}`` with ``Cache-Control: public, max-age=N``), and ``make_push_token``
signing RS256 OIDC tokens with google-auth's signer.

    with CertsServer() as certs:                  # http://127.0.0.1:<port>/oauth2/v1/certs
        token = make_push_token(aud="https://bridge.example/webhooks/google-play")
        certs.hits                                 # how many times the keys were fetched
"""
from __future__ import annotations

import datetime
import functools
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Self

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from google.auth import crypt, jwt

AUDIENCE = "https://bridge.example.com/webhooks/google-play"
PUSH_ACCOUNT = "pubsub-push@demo-project.iam.gserviceaccount.com"
KID = "test-key-1"


@functools.cache
def rsa_key(name: str = KID) -> rsa.RSAPrivateKey:
    """One 2048-bit key per name for the whole test session (generating one takes ~50 ms)."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@functools.cache
def certificate_pem(name: str = KID) -> str:
    """A self-signed certificate of ``rsa_key(name)``, PEM, as Google publishes its keys."""
    key = rsa_key(name)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"{name}.test.invalid")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=30)).sign(key, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def private_pem(name: str = KID) -> str:
    return rsa_key(name).private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()).decode()


def make_push_token(*, key: str = KID, kid: str | None = KID, now: float | None = None, header: dict | None = None,
                    drop: tuple[str, ...] = (), **claims) -> str:
    """An RS256 OIDC token like the one a Pub/Sub push subscription sends, signed with ``rsa_key(key)``;
    ``claims`` override the defaults (None removes one), ``drop`` removes claims, ``kid`` None leaves the
    header without one."""
    issued = int(time.time() if now is None else now)
    payload = {"iss": "https://accounts.google.com", "aud": AUDIENCE, "azp": "1234567890", "sub": "1234567890",
               "email": PUSH_ACCOUNT, "email_verified": True, "iat": issued, "exp": issued + 3600}
    payload.update(claims)
    payload = {k: v for k, v in payload.items() if v is not None and k not in drop}
    return jwt.encode(crypt.RSASigner(rsa_key(key)), payload, header=dict(header or {}), key_id=kid).decode()


class CertsServer:
    """Serves ``{kid: PEM}`` for ``keys`` on 127.0.0.1:<free port>; ``hits`` counts GETs. ``max_age``
    None sends no Cache-Control; ``status`` other than 200 answers that with an error body."""

    path = "/oauth2/v1/certs"

    def __init__(self, keys: tuple[str, ...] = (KID,), max_age: int | None = 3600, status: int = 200):
        self._lock = threading.Lock()
        self.reset(keys, max_age, status)
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                with server._lock:
                    server.hits += 1
                    status, body = server.status, server.body
                    if body is None:
                        body = json.dumps({kid: certificate_pem(kid) for kid in server.keys}).encode()
                if status != 200:
                    body = b'{"error": "unavailable"}'
                self.send_response(status)
                self.send_header("Content-Type", "application/json; charset=UTF-8")
                if server.max_age is not None and status == 200:
                    self.send_header("Cache-Control", f"public, max-age={server.max_age}, must-revalidate, no-transform")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}{self.path}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)

    def reset(self, keys: tuple[str, ...] = (KID,), max_age: int | None = 3600, status: int = 200) -> CertsServer:
        """Back to serving ``keys`` with ``max_age``, no hits counted (one server can serve many tests)."""
        with self._lock:
            self.keys, self.max_age, self.status = keys, max_age, status
            self.hits = 0
            self.body: bytes | None = None  # set: served instead of the keys
        return self

    def start(self) -> CertsServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the port (connections to it are then refused)."""
        if self._thread.is_alive():
            self._httpd.shutdown()
        self._httpd.server_close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


class FakeClock:
    """An injectable wall clock: ``clock()`` is now + whatever ``advance`` added."""

    def __init__(self, start: float | None = None):
        self.now = time.time() if start is None else start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def service_account_info(email: str = "kraty-bridge@demo-project.iam.gserviceaccount.com", key: str = "sa-key",
                         **overrides) -> dict:
    """A service account JSON key like the Cloud console's (its private key generated here)."""
    info = {"type": "service_account", "project_id": "demo-project", "private_key_id": "0123456789abcdef",
            "private_key": private_pem(key), "client_email": email, "client_id": "1234567890",
            "auth_uri": "https://accounts.google.com/o/oauth2/auth", "token_uri": "https://oauth2.googleapis.com/token"}
    info.update(overrides)
    return {k: v for k, v in info.items() if v is not None}
