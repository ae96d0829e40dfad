"""A test certificate authority shaped like Apple's App Store signing chain, and JWS signed with it.

Apple signs every App Store Server Notification and StoreKit 2 transaction as a JWS whose header is
``{"alg": "ES256", "x5c": [leaf, intermediate, root]}`` (base64 DER). ``make_chain`` builds the same
three levels with ``cryptography``: a self-signed root CA, an intermediate CA carrying Apple's WWDR
OID 1.2.840.113635.100.6.2.1 and a leaf carrying the receipt-signing OID 1.2.840.113635.100.6.11.1,
all P-256, with subject/authority key identifiers, basic constraints and key usage as Apple's have
them — so Apple's ``SignedDataVerifier`` accepts them in strict (``X509_STRICT``) mode. Validity
windows are parameters, so a test can make a leaf that expired before a payload's ``signedDate``.

``sign_jws`` signs a payload the way Apple does (and can get it wrong on purpose); ``transaction``
and ``notification`` build the decoded payloads; ``signed_notification`` nests a signed transaction.
"""
from __future__ import annotations

import base64
import datetime as dt
import functools
import hashlib
import hmac
import json
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import AuthorityInformationAccessOID, NameOID

from tests.support.wsgi_server import SHUTDOWN_POLL

LEAF_OID = "1.2.840.113635.100.6.11.1"
INTERMEDIATE_OID = "1.2.840.113635.100.6.2.1"
DER_NULL = b"\x05\x00"  # the value Apple's certificates give both OIDs

BUNDLE_ID = "com.demo.game"
APP_APPLE_ID = 1234567890
DAY = dt.timedelta(days=1)


def utc(ms: int | None = None) -> dt.datetime:
    """Now, or the time ``ms`` milliseconds after the epoch (a payload's signedDate)."""
    return dt.datetime.now(dt.UTC) if ms is None else dt.datetime.fromtimestamp(ms / 1000, dt.UTC)


def now_ms() -> int:
    return int(time.time() * 1000)


@dataclass(frozen=True)
class Certified:
    """A certificate and its private key."""

    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey

    @property
    def der(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.DER)

    @property
    def pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    @property
    def sha256(self) -> str:
        """The fingerprint KB_APPLE_ROOT_SHA256 pins (upper-case hex of the DER's SHA-256)."""
        return hashlib.sha256(self.der).hexdigest().upper()


@dataclass(frozen=True)
class Chain:
    leaf: Certified
    intermediate: Certified
    root: Certified

    def x5c(self) -> list[str]:
        """The JWS header's x5c: leaf, intermediate, root, each base64 (not url-safe) DER."""
        return [base64.b64encode(c.der).decode() for c in (self.leaf, self.intermediate, self.root)]

    def write_root(self, directory: Path, name: str = "root.cer", pem: bool = False) -> Path:
        path = Path(directory) / name
        path.write_bytes(self.root.pem if pem else self.root.der)
        return path


def _name(common_name: str) -> x509.Name:
    return x509.Name([
        x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "Test Certification Authority"),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "kraty-bridge tests"),
        x509.NameAttribute(NameOID.COUNTRY_NAME, "US"),
    ])


def _key_usage(*, digital_signature: bool = False, cert_sign: bool = False) -> x509.KeyUsage:
    return x509.KeyUsage(digital_signature=digital_signature, content_commitment=False, key_encipherment=False,
                         data_encipherment=False, key_agreement=False, key_cert_sign=cert_sign, crl_sign=cert_sign,
                         encipher_only=False, decipher_only=False)


def _issue(subject: str, key: ec.EllipticCurvePrivateKey, issuer: Certified | None, *, ca: bool,
           not_before: dt.datetime, not_after: dt.datetime, oid: str | None, ocsp_url: str | None) -> Certified:
    public = key.public_key()
    signer = issuer or Certified(None, key)  # self-signed when there is no issuer
    builder = (x509.CertificateBuilder()
               .subject_name(_name(subject))
               .issuer_name(issuer.cert.subject if issuer else _name(subject))
               .public_key(public)
               .serial_number(x509.random_serial_number())
               .not_valid_before(not_before)
               .not_valid_after(not_after)
               .add_extension(x509.BasicConstraints(ca=ca, path_length=0 if ca and issuer else None), critical=True)
               .add_extension(_key_usage(digital_signature=not ca, cert_sign=ca), critical=True)
               .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False))
    if issuer is not None:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.key.public_key()), critical=False)
    if ocsp_url is not None:
        builder = builder.add_extension(x509.AuthorityInformationAccess(
            [x509.AccessDescription(AuthorityInformationAccessOID.OCSP, x509.UniformResourceIdentifier(ocsp_url))]),
            critical=False)
    if oid is not None:
        builder = builder.add_extension(x509.UnrecognizedExtension(x509.ObjectIdentifier(oid), DER_NULL),
                                        critical=False)
    return Certified(builder.sign(signer.key, hashes.SHA256()), key)


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def make_root(name: str = "Test Apple Root CA - G3", *, not_before: dt.datetime | None = None,
              not_after: dt.datetime | None = None) -> Certified:
    now = utc()
    return _issue(name, _key(), None, ca=True, not_before=not_before or now - 3650 * DAY,
                  not_after=not_after or now + 3650 * DAY, oid=None, ocsp_url=None)


def make_chain(root: Certified | None = None, *, label: str = "", leaf_not_before: dt.datetime | None = None,
               leaf_not_after: dt.datetime | None = None, intermediate_oid: bool = True, leaf_oid: bool = True,
               ocsp_url: str | None = None) -> Chain:
    """Root (new unless given) -> intermediate (WWDR OID) -> leaf (receipt-signing OID), all P-256.

    ``ocsp_url``: put an OCSP responder in both the intermediate's and the leaf's Authority Information
    Access (only online checks use it). ``label`` tells chains apart in certificate names.
    """
    now = utc()
    root = root or make_root(f"Test Apple Root CA - G3{label}")
    intermediate = _issue(f"Test Apple WWDR CA G6{label}", _key(), root, ca=True, not_before=now - 1000 * DAY,
                          not_after=now + 1000 * DAY, oid=INTERMEDIATE_OID if intermediate_oid else None,
                          ocsp_url=ocsp_url)
    leaf = _issue(f"Test Prod ECC App Store Receipt Signing{label}", _key(), intermediate,
                  ca=False, not_before=leaf_not_before or now - 100 * DAY, not_after=leaf_not_after or now + 100 * DAY,
                  oid=LEAF_OID if leaf_oid else None, ocsp_url=ocsp_url)
    return Chain(leaf, intermediate, root)


@functools.cache
def default_chain() -> Chain:
    """The chain most tests sign with (built once per session)."""
    return make_chain()


@functools.cache
def other_chain() -> Chain:
    """A second, unrelated chain (its own root): signatures from it must be refused."""
    return make_chain(label=" (other)")


# ---------------------------------------------------------------- JWS
def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _json(obj) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def sign_jws(payload: dict, chain: Chain | None = None, *, alg: str = "ES256", x5c: bool | list[str] = True,
             key: ec.EllipticCurvePrivateKey | None = None, header: dict | None = None) -> str:
    """``header.payload.signature`` as Apple sends it: ES256 over the two segments with the leaf's key,
    ``x5c`` the chain. Wrong on request: ``alg`` "ES384" (signed with SHA-384), "HS256" (an HMAC),
    "none" (no signature); ``x5c=False`` leaves it out, a list replaces it; ``key`` signs with another key.
    """
    chain = chain or default_chain()
    head = {"alg": alg}
    if x5c is True:
        head["x5c"] = chain.x5c()
    elif x5c:
        head["x5c"] = list(x5c)
    head.update(header or {})
    signing_input = f"{b64url(_json(head))}.{b64url(_json(payload))}".encode()
    if alg == "none":
        signature = b""
    elif alg.startswith("HS"):
        signature = hmac.new(b"not-a-certificate", signing_input, hashlib.sha256).digest()
    else:
        digest = hashes.SHA384() if alg == "ES384" else hashes.SHA256()
        r, s = decode_dss_signature((key or chain.leaf.key).sign(signing_input, ec.ECDSA(digest)))
        signature = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    return f"{signing_input.decode()}.{b64url(signature)}"


def tamper_payload(jws: str, **changes) -> str:
    """The same header and signature over a payload with ``changes`` applied."""
    head, body, signature = jws.split(".")
    payload = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    payload.update(changes)
    return f"{head}.{b64url(_json(payload))}.{signature}"


def tamper_signature(jws: str) -> str:
    """Flip one bit of the signature's first byte."""
    head, body, signature = jws.split(".")
    raw = bytearray(base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4)))
    raw[0] ^= 0x01
    return f"{head}.{body}.{b64url(bytes(raw))}"


# ---------------------------------------------------------------- payloads
def transaction(*, bundle_id: str = BUNDLE_ID, environment: str = "Sandbox", transaction_id: str = "2000000000000001",
                original_transaction_id: str | None = None, product_id: str = "com.demo.gems100", quantity: int = 1,
                type: str = "Consumable", app_account_token: str | None = None, signed_date: int | None = None,
                **extra) -> dict:
    """A decoded StoreKit 2 transaction (JWSTransactionDecodedPayload)."""
    signed = now_ms() if signed_date is None else signed_date
    payload = {
        "transactionId": transaction_id, "originalTransactionId": original_transaction_id or transaction_id,
        "bundleId": bundle_id, "productId": product_id, "purchaseDate": signed - 1000,
        "originalPurchaseDate": signed - 1000, "quantity": quantity, "type": type,
        "inAppOwnershipType": "PURCHASED", "signedDate": signed, "environment": environment,
        "transactionReason": "PURCHASE", "storefront": "USA", "storefrontId": "143441", "price": 990,
        "currency": "USD",
    }
    if app_account_token is not None:
        payload["appAccountToken"] = app_account_token
    payload.update(extra)
    return payload


def notification(notification_type: str = "ONE_TIME_CHARGE", *, subtype: str | None = None,
                 bundle_id: str = BUNDLE_ID, environment: str = "Sandbox", app_apple_id: int | None = None,
                 signed_transaction: str | None = None, signed_date: int | None = None,
                 notification_uuid: str | None = None, data: dict | None = None) -> dict:
    """A decoded App Store Server Notification V2 (ResponseBodyV2DecodedPayload). A ``TEST``
    notification's data holds only bundleId and environment; ``app_apple_id`` defaults to
    ``APP_APPLE_ID`` in Production (Apple leaves it out in the sandbox)."""
    if data is None:
        data = {"bundleId": bundle_id, "environment": environment}
        if notification_type != "TEST":
            if app_apple_id is None and environment == "Production":
                app_apple_id = APP_APPLE_ID
            if app_apple_id is not None:
                data["appAppleId"] = app_apple_id
            data["bundleVersion"] = "1.0"
            if signed_transaction is not None:
                data["signedTransactionInfo"] = signed_transaction
    payload = {"notificationType": notification_type, "notificationUUID": notification_uuid or str(uuid.uuid4()),
               "data": data, "version": "2.0", "signedDate": now_ms() if signed_date is None else signed_date}
    if subtype is not None:
        payload["subtype"] = subtype
    return payload


def signed_notification(notification_type: str = "ONE_TIME_CHARGE", *, chain: Chain | None = None,
                        transaction_chain: Chain | None = None, environment: str = "Sandbox",
                        bundle_id: str = BUNDLE_ID, tx: dict | None = None, **fields) -> str:
    """A signed notification; unless it is a TEST, its data nests ``tx`` (default: a transaction of the
    same bundle and environment) signed with ``transaction_chain`` (default: ``chain``)."""
    chain = chain or default_chain()
    signed_tx = None
    if notification_type != "TEST":
        tx = tx if tx is not None else transaction(bundle_id=bundle_id, environment=environment)
        signed_tx = sign_jws(tx, transaction_chain or chain)
    return sign_jws(notification(notification_type, bundle_id=bundle_id, environment=environment,
                                 signed_transaction=signed_tx, **fields), chain)


# ---------------------------------------------------------------- a local OCSP responder (online checks)
class OcspResponder:
    """An OCSP responder on 127.0.0.1 for the certificates of ``chains`` (``make_chain(ocsp_url=...)``
    with ``responder.url``): answers each request, signed by the certificate's issuer, with
    ``status`` ("good" or "revoked"); ``requests`` counts what it was asked. Use as a context manager."""

    def __init__(self, status: str = "good"):
        self.status, self.requests, self._known = status, 0, {}
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        responder = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                answer = responder.answer(body)
                self.send_response(200)
                self.send_header("Content-Type", "application/ocsp-response")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args):
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/ocsp"

    def serve(self, *chains: Chain) -> None:
        for chain in chains:
            self._known[chain.leaf.cert.serial_number] = (chain.leaf, chain.intermediate)
            self._known[chain.intermediate.cert.serial_number] = (chain.intermediate, chain.root)

    def answer(self, body: bytes) -> bytes:
        from cryptography.x509 import ocsp

        self.requests += 1
        request = ocsp.load_der_ocsp_request(body)
        cert, issuer = self._known[request.serial_number]
        now = utc()
        revoked = self.status == "revoked"
        response = (ocsp.OCSPResponseBuilder()
                    .add_response(cert=cert.cert, issuer=issuer.cert, algorithm=hashes.SHA256(),
                                  cert_status=ocsp.OCSPCertStatus.REVOKED if revoked else ocsp.OCSPCertStatus.GOOD,
                                  this_update=now - dt.timedelta(minutes=1), next_update=now + dt.timedelta(hours=1),
                                  revocation_time=now - DAY if revoked else None, revocation_reason=None)
                    .responder_id(ocsp.OCSPResponderEncoding.HASH, issuer.cert)
                    .sign(issuer.key, hashes.SHA256()))
        return response.public_bytes(serialization.Encoding.DER)

    def __enter__(self):
        import threading

        self._thread = threading.Thread(target=self._server.serve_forever, args=(SHUTDOWN_POLL,), daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()


def closed_port_url() -> str:
    """An http URL on 127.0.0.1 where nothing listens (connections are refused)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/ocsp"
