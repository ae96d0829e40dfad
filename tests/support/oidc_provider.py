"""A small OpenID Connect provider the console's sign-in tests run on a free loopback port: a real discovery
document, a JWKS, an authorization endpoint that "signs in" whoever the test names and checks the PKCE challenge
is there, and a token endpoint that checks the client's secret, the code, the redirect URI and the PKCE verifier
(S256) before answering an ID token signed RS256 with ``cryptography``. It is written here, not with the library
under test, so a mistake in how that library checks tokens cannot hide behind the same mistake here.

Knobs for the bad cases: ``provider.tamper`` changes the next ID tokens (``aud``, ``iss``, ``nonce``, ``exp``
offset in seconds, ``other_key``: signed by a key the JWKS does not hold, under the same key id)."""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
import threading
from contextlib import contextmanager
from urllib.parse import urlencode

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from flask import Flask, jsonify, redirect, request
from werkzeug.serving import make_server


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _int(value: int) -> str:
    return b64url(value.to_bytes((value.bit_length() + 7) // 8, "big"))


class Provider:
    """The provider's state: its client, keys, the person who signs in next, codes issued, and what it saw."""

    def __init__(self, client_id: str, client_secret: str):
        self.client_id, self.client_secret = client_id, client_secret
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.kid = "test-key-1"
        self.issuer = ""          # set once served (its URL)
        self.person = {"sub": "248289761001", "email": "alice@example.com", "email_verified": True,
                       "groups": ["kb-support"]}
        self.tamper: dict = {}
        self.auth_methods = ["client_secret_basic", "client_secret_post"]   # what discovery offers
        self.codes: dict[str, dict] = {}
        self.token_requests: list[dict] = []   # what the token endpoint was sent (secrets left out)

    def sign(self, claims: dict, key=None) -> str:
        header = {"alg": "RS256", "kid": self.kid, "typ": "JWT"}
        signing_input = f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(claims).encode())}".encode()
        signature = (key or self.key).sign(signing_input, padding.PKCS1v15(), hashes.SHA256())
        return f"{signing_input.decode()}.{b64url(signature)}"

    def jwks(self) -> dict:
        numbers = self.key.public_key().public_numbers()
        return {"keys": [{"kty": "RSA", "use": "sig", "alg": "RS256", "kid": self.kid, "n": _int(numbers.n),
                          "e": _int(numbers.e)}]}

    def id_token(self, grant: dict) -> str:
        now = int(time.time())
        claims = {"iss": self.tamper.get("iss", self.issuer), "aud": self.tamper.get("aud", self.client_id),
                  "iat": now, "exp": now + 300 + self.tamper.get("exp", 0), "auth_time": now,
                  "nonce": self.tamper.get("nonce", grant["nonce"]), **grant["person"]}
        return self.sign(claims, self.other_key if self.tamper.get("other_key") else None)

    def app(self) -> Flask:
        app = Flask("test_oidc_provider")

        @app.get("/.well-known/openid-configuration")
        def discovery():
            return jsonify({
                "issuer": self.issuer, "authorization_endpoint": f"{self.issuer}/authorize",
                "token_endpoint": f"{self.issuer}/token", "jwks_uri": f"{self.issuer}/jwks",
                "response_types_supported": ["code"], "subject_types_supported": ["public"],
                "id_token_signing_alg_values_supported": ["RS256"], "code_challenge_methods_supported": ["S256"],
                "scopes_supported": ["openid", "email", "profile"],
                "token_endpoint_auth_methods_supported": self.auth_methods})

        @app.get("/jwks")
        def jwks():
            return jsonify(self.jwks())

        @app.get("/authorize")
        def authorize():
            args = request.args
            if args.get("client_id") != self.client_id or not args.get("redirect_uri"):
                return jsonify(error="invalid_client"), 400
            problem = None
            if args.get("response_type") != "code" or "openid" not in args.get("scope", "").split():
                problem = "unsupported_response_type"
            elif args.get("code_challenge_method") != "S256" or not args.get("code_challenge"):
                problem = "invalid_request"      # PKCE is required here
            elif not args.get("state") or not args.get("nonce"):
                problem = "invalid_request"
            if problem:
                return redirect(f"{args['redirect_uri']}?{urlencode({'error': problem, 'state': args.get('state', '')})}")
            code = secrets.token_urlsafe(16)
            self.codes[code] = {"redirect_uri": args["redirect_uri"], "nonce": args["nonce"],
                                "challenge": args["code_challenge"], "person": dict(self.person)}
            return redirect(f"{args['redirect_uri']}?{urlencode({'code': code, 'state': args['state']})}")

        @app.post("/token")
        def token():
            form = request.form
            client_id, client_secret = form.get("client_id"), form.get("client_secret")
            if request.authorization is not None:
                client_id, client_secret = request.authorization.username, request.authorization.password
            method = "client_secret_basic" if request.authorization is not None else "client_secret_post"
            if method not in self.auth_methods:
                return jsonify(error="invalid_client", error_description=f"{method} not accepted"), 401
            self.token_requests.append({k: v for k, v in form.items() if k != "client_secret"})
            if client_id != self.client_id or not hmac.compare_digest(str(client_secret), self.client_secret):
                return jsonify(error="invalid_client"), 401
            grant = self.codes.pop(form.get("code", ""), None)
            if form.get("grant_type") != "authorization_code" or grant is None \
                    or form.get("redirect_uri") != grant["redirect_uri"]:
                return jsonify(error="invalid_grant"), 400
            verifier = form.get("code_verifier", "")
            if b64url(hashlib.sha256(verifier.encode()).digest()) != grant["challenge"]:
                return jsonify(error="invalid_grant", error_description="PKCE verification failed"), 400
            return jsonify({"access_token": secrets.token_urlsafe(16), "token_type": "Bearer", "expires_in": 3600,
                            "id_token": self.id_token(grant)})

        return app


@contextmanager
def served(client_id: str, client_secret: str):
    """A Provider served on a free loopback port (its issuer URL set) until the block ends."""
    provider = Provider(client_id, client_secret)
    server = make_server("127.0.0.1", 0, provider.app(), threaded=True)
    provider.issuer = f"http://127.0.0.1:{server.server_port}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield provider
    finally:
        server.shutdown()
