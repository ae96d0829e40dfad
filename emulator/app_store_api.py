"""A local fake of the App Store Server API calls kraty-bridge makes, in Apple's wire format, and the
``/_apple`` admin API that tests and local runs use to register keys and notifications.

``create_app_store_app(config)`` builds a fresh, independent fake (no state or I/O at import). Apple
serves Production and Sandbox on two hosts; the fake serves them under ``/production`` and ``/sandbox``
(``KB_APPLE_API_BASE=<url>/production``, ``KB_APPLE_SANDBOX_API_BASE=<url>/sandbox``):

    POST /<env>/inApps/v1/notifications/history[?paginationToken=]   Get Notification History (20 a page)
    PUT  /<env>/inApps/v2/transactions/consumption/{transactionId}   Send Consumption Information (202)

What it checks, as Apple does: the bearer JWT (``alg`` ES256 signed by a registered key, ``kid`` that
key's id, ``iss`` its issuer id, ``aud`` appstoreconnect-v1, ``bid`` its bundle id, ``exp`` in the future
and at most an hour away) -> 401; the history window (both dates, start before end, start within 180
days) -> 400 with Apple's error codes; a consumption body (``customerConsented`` true,
``sampleContentProvided`` a boolean, ``deliveryStatus`` and ``refundPreference`` from Apple's values,
``consumptionPercentage`` 0..100000 and above 0 for GRANT_PRORATED) -> 400; an unknown transaction -> 404.
"""
from __future__ import annotations

import base64
import hashlib
import json
import threading
import time

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from flask import Flask, request
from werkzeug.exceptions import HTTPException

from emulator.fake_api import (FakeState, from_loopback, json_body, json_response, mount, new_fake_app,
                       register_common_admin)

ENVIRONMENTS = {"production": "Production", "sandbox": "Sandbox"}
PAGE = 20
HISTORY_DAYS = 180
DELIVERY = ("DELIVERED", "UNDELIVERED_QUALITY_ISSUE", "UNDELIVERED_WRONG_ITEM", "UNDELIVERED_SERVER_OUTAGE",
            "UNDELIVERED_OTHER")
REFUND_PREFERENCES = ("DECLINE", "GRANT_FULL", "GRANT_PRORATED")


class AppleError(Exception):
    def __init__(self, status: int, code: int | None = None, message: str = ""):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def _b64(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def _unverified(jws: str) -> dict:
    try:
        return json.loads(_b64(jws.split(".")[1]))
    except (IndexError, ValueError) as exc:
        raise AppleError(400, None, f"not a JWS: {exc}") from None


class AppStoreFake(FakeState):
    """Everything one fake holds; ``app.extensions["app_store_fake"]``."""

    def __init__(self, config: dict):
        self.lock = threading.Lock()
        super().__init__(config)
        self.reset()

    def reset(self) -> None:
        with self.lock:
            self.keys: dict[str, dict] = {}
            self.notifications: list[dict] = []
            self.consumption: list[dict] = []
        super().reset()

    # ---------------------------------------------------------------- the bearer token
    def authenticate(self, header: str) -> dict:
        """The registered key that signed the request's token, or 401."""
        scheme, _, token = header.partition(" ")
        parts = token.strip().split(".")
        if scheme != "Bearer" or len(parts) != 3:
            raise AppleError(401, None, "Unauthenticated")
        try:
            head, claims, signature = json.loads(_b64(parts[0])), json.loads(_b64(parts[1])), _b64(parts[2])
        except ValueError:
            raise AppleError(401, None, "Unauthenticated") from None
        key = self.keys.get(head.get("kid")) if isinstance(head, dict) else None
        if key is None or head.get("alg") != "ES256" or len(signature) != 64 or not isinstance(claims, dict):
            raise AppleError(401, None, "Unauthenticated")
        der = encode_dss_signature(int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big"))
        try:
            key["public_key"].verify(der, f"{parts[0]}.{parts[1]}".encode(), ec.ECDSA(hashes.SHA256()))
        except InvalidSignature:
            raise AppleError(401, None, "Unauthenticated") from None
        exp, now = claims.get("exp"), time.time()
        if (claims.get("aud") != "appstoreconnect-v1" or claims.get("iss") != key["issuer_id"]
                or claims.get("bid") != key["bundle_id"] or not isinstance(exp, int) or not now < exp <= now + 3600):
            raise AppleError(401, None, "Unauthenticated")
        return key

    # ---------------------------------------------------------------- the API
    def history(self, environment: str, bundle_id: str, body: dict, token: str | None) -> dict:
        start, end = body.get("startDate"), body.get("endDate")
        now_ms = int(time.time() * 1000)
        if not isinstance(start, int):
            raise AppleError(400, 4000015, "Invalid request start date.")
        if not isinstance(end, int):
            raise AppleError(400, 4000016, "Invalid request end date.")
        if start < now_ms - HISTORY_DAYS * 86_400_000:
            raise AppleError(400, 4000012, "Invalid request. The start date is earlier than the allowed start date.")
        if start >= end:
            raise AppleError(400, 4000013, "Invalid request. The end date precedes the start date or the dates are "
                             "the same.")
        with self.lock:
            found = [n for n in self.notifications if n["environment"] == environment and n["bundle_id"] == bundle_id
                     and start <= n["signed_date"] < end
                     and body.get("notificationType") in (None, n["type"])
                     and body.get("transactionId") in (None, n["transaction_id"])
                     and not (body.get("onlyFailures") and n["delivered"])]
        query = hashlib.sha256(json.dumps([environment, bundle_id, body], sort_keys=True).encode()).hexdigest()[:16]
        offset = 0
        if token is not None:
            name, _, number = token.partition(":")
            if name != query or not number.isdigit():
                raise AppleError(400, 4000014, "Invalid pagination token.")
            offset = int(number)
        page, more = found[offset:offset + PAGE], len(found) > offset + PAGE
        return {"notificationHistory": [{"signedPayload": n["signed_payload"], "sendAttempts": [
                    {"attemptDate": n["signed_date"], "sendAttemptResult": "SUCCESS" if n["delivered"] else
                     "NO_RESPONSE"}]} for n in page],
                "hasMore": more, "paginationToken": f"{query}:{offset + PAGE}" if more else None}

    def consume(self, environment: str, bundle_id: str, transaction_id: str, body: dict) -> None:
        if body.get("customerConsented") is not True:
            raise AppleError(400, 4000035, "Invalid request. The customer consented field is invalid.")
        if not isinstance(body.get("sampleContentProvided"), bool):
            raise AppleError(400, 4000041, "Invalid request. The sample content provided field is invalid.")
        if body.get("deliveryStatus") not in DELIVERY:
            raise AppleError(400, 4000036, "Invalid request. The delivery status field is invalid.")
        percentage, preference = body.get("consumptionPercentage"), body.get("refundPreference")
        if preference is not None and preference not in REFUND_PREFERENCES:
            raise AppleError(400, 4000044, "Invalid request. The refund preference field is invalid.")
        if percentage is not None and (not isinstance(percentage, int) or isinstance(percentage, bool)
                                       or not 0 <= percentage <= 100_000):
            raise AppleError(400, 4000053, "Invalid request. The consumption percentage field is invalid.")
        if preference == "GRANT_PRORATED" and not percentage:
            raise AppleError(400, 4000053, "GRANT_PRORATED needs a consumptionPercentage above 0.")
        with self.lock:
            if not any(n["transaction_id"] == transaction_id and n["environment"] == environment
                       and n["bundle_id"] == bundle_id for n in self.notifications):
                raise AppleError(404, 4040010, "Transaction id not found.")
            self.consumption.append({"environment": environment, "transactionId": transaction_id, "body": body})

    # ---------------------------------------------------------------- admin
    def add_key(self, body: dict) -> dict:
        try:
            public_key = serialization.load_pem_public_key(body["publicKey"].encode())
            key = {"key_id": body["keyId"], "issuer_id": body["issuerId"], "bundle_id": body["bundleId"],
                   "public_key": public_key}
        except (KeyError, AttributeError, ValueError) as exc:
            raise AppleError(400, None, f"keyId, issuerId, bundleId and publicKey (PEM) are needed: {exc}") from None
        with self.lock:
            self.keys[key["key_id"]] = key
        return {"keyId": key["key_id"]}

    def add_notification(self, body: dict) -> dict:
        """``{"signedPayload": <JWS>, "delivered": false}``: a notification Apple sent (or failed to send)."""
        signed = body.get("signedPayload")
        if not isinstance(signed, str):
            raise AppleError(400, None, "signedPayload (a JWS) is needed")
        payload = _unverified(signed)
        data = payload.get("data") or {}
        nested = data.get("signedTransactionInfo")
        entry = {"signed_payload": signed, "type": payload.get("notificationType"),
                 "environment": data.get("environment"), "bundle_id": data.get("bundleId"),
                 "signed_date": payload.get("signedDate"), "delivered": bool(body.get("delivered", False)),
                 "transaction_id": _unverified(nested).get("transactionId") if nested else None}
        with self.lock:
            self.notifications.append(entry)
            self.notifications.sort(key=lambda n: n["signed_date"])
        return {"notificationUUID": payload.get("notificationUUID")}


def create_app_store_app(config: dict | None = None) -> Flask:
    fake = AppStoreFake(config or {})
    app = new_fake_app("app_store_fake", fake, "App Store fake", lambda path: "/inApps/" in path,
                       lambda rule, path, message: json_response(rule["status"], {
                           "errorCode": rule["code"] or rule["status"] * 10_000, "errorMessage": message}))

    @app.errorhandler(AppleError)
    def apple_error(err: AppleError):
        if err.code is None:
            return json_response(err.status, {"errorMessage": err.message}) if err.status != 401 else (
                err.message, 401, {"Content-Type": "text/plain"})
        return json_response(err.status, {"errorCode": err.code, "errorMessage": err.message})

    @app.errorhandler(HTTPException)
    def http_error(err: HTTPException):
        return json_response(err.code or 500, {"errorMessage": err.description or "HTTP error"})

    @app.before_request
    def guard():
        if request.path.startswith("/_apple") and not from_loopback():
            raise AppleError(403, None, "the App Store fake's admin API is loopback only")

    def environment(env: str) -> str:
        if env not in ENVIRONMENTS:
            raise AppleError(404, None, f"no environment {env}")
        return ENVIRONMENTS[env]

    def body() -> dict:
        data = json_body(lambda message: AppleError(400, 4000000, message))
        if not isinstance(data, dict):
            raise AppleError(400, 4000000, "the body must be a JSON object")
        return data

    @app.post("/<env>/inApps/v1/notifications/history")
    def history(env):
        where = environment(env)
        key = fake.authenticate(request.headers.get("Authorization", ""))
        return fake.history(where, key["bundle_id"], body(), request.args.get("paginationToken"))

    @app.put("/<env>/inApps/v2/transactions/consumption/<transaction_id>")
    def consumption(env, transaction_id):
        where = environment(env)
        key = fake.authenticate(request.headers.get("Authorization", ""))
        fake.consume(where, key["bundle_id"], transaction_id, body())
        return "", 202

    @app.post("/_apple/keys")
    def admin_key():
        return fake.add_key(body())

    @app.post("/_apple/notifications")
    def admin_notification():
        return fake.add_notification(body())

    @app.get("/_apple/consumption")
    def admin_consumption():
        with fake.lock:
            return {"requests": list(fake.consumption)}

    register_common_admin(app, "/_apple", fake, lambda err: AppleError(400, None, err.message))
    return app


def mount_app_store(app: Flask, prefix: str = "/apple", config: dict | None = None) -> Flask:
    """Serve a new fake under ``prefix`` in front of ``app`` (``KB_APPLE_API_BASE=<emulator>/apple/production``)."""
    return mount(app, prefix, create_app_store_app(config))
