"""The fake Google Play API's wire format (emulator/google_play_api.py): Google's error shape,
Android Publisher API v3 resources rendered from the fake's stored purchases, ids like Google's,
the checks admin bodies go through, and the opaque page token of voided purchases."""
from __future__ import annotations

import base64
import json
import secrets
import string
import time
from datetime import datetime, timezone

PURCHASE_STATES = ("PURCHASED", "PENDING", "CANCELLED")
V1_PURCHASE_STATE = {"PURCHASED": 0, "CANCELLED": 1, "PENDING": 2}
SUBSCRIPTION_STATES = ("SUBSCRIPTION_STATE_PENDING", "SUBSCRIPTION_STATE_ACTIVE",
                       "SUBSCRIPTION_STATE_PAUSED", "SUBSCRIPTION_STATE_IN_GRACE_PERIOD",
                       "SUBSCRIPTION_STATE_ON_HOLD", "SUBSCRIPTION_STATE_CANCELED",
                       "SUBSCRIPTION_STATE_EXPIRED", "SUBSCRIPTION_STATE_PENDING_PURCHASE_CANCELED")
ACK = {False: "ACKNOWLEDGEMENT_STATE_PENDING", True: "ACKNOWLEDGEMENT_STATE_ACKNOWLEDGED"}
DAY_MS = 86_400_000
DEFAULT_PACKAGE = "com.kraty.demo"
ACCOUNT_FIELDS = ("obfuscatedExternalAccountId", "obfuscatedExternalProfileId")
STATUS = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED",
          404: "NOT_FOUND", 409: "ABORTED", 410: "NOT_FOUND", 429: "RESOURCE_EXHAUSTED",
          500: "INTERNAL", 501: "NOT_IMPLEMENTED", 502: "UNAVAILABLE", 503: "UNAVAILABLE",
          504: "DEADLINE_EXCEEDED"}
REASONS = {400: "invalid", 401: "authError", 403: "insufficientPermissions", 404: "notFound",
           409: "concurrentUpdate", 429: "rateLimitExceeded", 500: "backendError",
           503: "backendError"}


class GoogleError(Exception):
    """A Google API error answer: ``{"error": {code, message, errors: [...], status}}``."""

    def __init__(self, code: int, message: str, reason: str | None = None,
                 status: str | None = None, domain: str = "global", headers: dict | None = None):
        super().__init__(message)
        self.code, self.message, self.domain, self.headers = code, message, domain, headers or {}
        self.reason = reason or REASONS.get(code, "unknown")
        self.status = status or STATUS.get(code, "UNKNOWN")

    def body(self) -> dict:
        return {"error": {"code": self.code, "message": self.message,
                          "errors": [{"message": self.message, "domain": self.domain,
                                      "reason": self.reason}],
                          "status": self.status}}


def bad(message: str) -> GoogleError:
    return GoogleError(400, message)


def now_ms() -> int:
    return int(time.time() * 1000)


def rfc3339(ms: int) -> str:
    moment = datetime.fromtimestamp(ms / 1000, timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def new_order_id() -> str:
    d = lambda n: "".join(secrets.choice(string.digits) for _ in range(n))  # noqa: E731
    return f"GPA.{d(4)}-{d(4)}-{d(4)}-{d(5)}"


def new_purchase_token() -> str:
    letters = "".join(secrets.choice(string.ascii_lowercase) for _ in range(24))
    return f"{letters}.AO-J1O{secrets.token_urlsafe(72)}"


def fields(body, allowed: set, what: str) -> dict:
    if not isinstance(body, dict):
        raise bad(f"{what} must be a JSON object")
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise bad(f'Invalid JSON payload received. Unknown name "{unknown[0]}": Cannot find field.')
    return body


def typed(body: dict, key: str, type_: type, default=None, choices=None, minimum=None):
    value = body.get(key, default)
    if value is None:
        return default
    if not isinstance(value, type_) or type(value) is bool and type_ is not bool:
        raise bad(f"{key} must be of type {type_.__name__}")
    if choices is not None and value not in choices:
        raise bad(f"{key} must be one of {', '.join(map(str, choices))}")
    if minimum is not None and value < minimum:
        raise bad(f"{key} must be >= {minimum}")
    return value


def millis(body: dict, key: str, default: int | None) -> int | None:
    """An instant given as epoch milliseconds (int) or an RFC 3339 string."""
    value = body.get(key)
    if value is None:
        return default
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise bad(f"{key} must be epoch milliseconds or an RFC 3339 time")
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=timezone.utc)
        return int(parsed.timestamp() * 1000)
    return typed(body, key, int, minimum=0)


def encode_page_token(cursor: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(cursor, separators=(",", ":")).encode()).decode()


def decode_page_token(token: str) -> dict:
    try:
        cursor = json.loads(base64.urlsafe_b64decode(token.encode()))
        if not isinstance(cursor, dict) or set(cursor) != {"start", "end", "type", "partial",
                                                           "after"}:
            raise ValueError
        return cursor
    except (ValueError, TypeError):
        raise bad("Invalid pagination token.")


# -- wire shapes ------------------------------------------------------------------------------

def render_product_v2(product: dict) -> dict:
    lines = []
    for line in product["lineItems"]:
        offer = {"quantity": line["quantity"], "refundableQuantity": line["refundableQuantity"],
                 "consumptionState": "CONSUMPTION_STATE_CONSUMED" if product["consumed"]
                 else "CONSUMPTION_STATE_YET_TO_BE_CONSUMED"}
        offer.update({k: line[k] for k in ("offerId", "purchaseOptionId") if k in line})
        lines.append({"productId": line["productId"], "productOfferDetails": offer})
    out = {"kind": "androidpublisher#productPurchaseV2", "productLineItem": lines,
           "purchaseStateContext": {"purchaseState": product["state"]}}
    if product["test"]:
        out["testPurchaseContext"] = {"fopType": "TEST"}
    out["orderId"] = product["orderId"]
    out.update({k: product[k] for k in ACCOUNT_FIELDS if k in product})
    out["regionCode"] = product["regionCode"]
    if product["completionTimeMillis"] is not None:
        out["purchaseCompletionTime"] = rfc3339(product["completionTimeMillis"])
    out["acknowledgementState"] = ACK[product["acknowledged"]]
    return out


def render_product_v1(product: dict, line: dict) -> dict:
    out = {"kind": "androidpublisher#productPurchase",
           "purchaseTimeMillis": str(product["purchaseTimeMillis"]),
           "purchaseState": V1_PURCHASE_STATE[product["state"]],
           "consumptionState": int(product["consumed"]),
           "developerPayload": product["developerPayload"], "orderId": product["orderId"]}
    if product["test"]:
        out["purchaseType"] = 0
    out["acknowledgementState"] = int(product["acknowledged"])
    out["quantity"] = line["quantity"]
    out["refundableQuantity"] = line["refundableQuantity"]
    out.update({k: product[k] for k in ACCOUNT_FIELDS if k in product})
    out["regionCode"] = product["regionCode"]
    return out


def render_subscription_v2(subscription: dict) -> dict:
    lines = []
    for line in subscription["lineItems"]:
        offer = {"basePlanId": line["basePlanId"]}
        if "offerId" in line:
            offer["offerId"] = line["offerId"]
        lines.append({"productId": line["productId"], "expiryTime": rfc3339(line["expiryMillis"]),
                      "autoRenewingPlan": {"autoRenewEnabled": line["autoRenewEnabled"]},
                      "offerDetails": offer,
                      "latestSuccessfulOrderId": line["latestSuccessfulOrderId"]})
    out = {"kind": "androidpublisher#subscriptionPurchaseV2",
           "regionCode": subscription["regionCode"], "lineItems": lines}
    if subscription["state"] != "SUBSCRIPTION_STATE_PENDING":
        out["startTime"] = rfc3339(subscription["startTime"])
    out["subscriptionState"] = subscription["state"]
    out["latestOrderId"] = subscription["latestOrderId"]
    if "linkedPurchaseToken" in subscription:
        out["linkedPurchaseToken"] = subscription["linkedPurchaseToken"]
    if subscription["test"]:
        out["testPurchase"] = {}
    out["acknowledgementState"] = ACK[subscription["acknowledged"]]
    ids = {k: subscription[k] for k in ACCOUNT_FIELDS if k in subscription}
    if ids:
        out["externalAccountIdentifiers"] = ids
    return out


def render_voided(entry: dict) -> dict:
    out = {"kind": "androidpublisher#voidedPurchase", "purchaseToken": entry["purchaseToken"],
           "purchaseTimeMillis": str(entry["purchaseTimeMillis"]),
           "voidedTimeMillis": str(entry["voidedTimeMillis"]), "orderId": entry["orderId"],
           "voidedSource": entry["voidedSource"], "voidedReason": entry["voidedReason"]}
    if "voidedQuantity" in entry:
        out["voidedQuantity"] = entry["voidedQuantity"]
    return out


def _account_ids(body: dict, base: dict) -> dict:
    out = {}
    for key in ACCOUNT_FIELDS:
        value = body[key] if key in body else base.get(key)
        if value is not None:
            out[key] = typed({key: value}, key, str)
    return out
