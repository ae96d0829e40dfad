"""The fake Google Play API's subscriptions (``PlaySubscriptions``, a part of ``PlayStore`` in
emulator/google_play_store.py): create, read, update, renew and acknowledge, behind the store's lock."""
from __future__ import annotations

from emulator.google_play_wire import (ACCOUNT_FIELDS, DAY_MS, DEFAULT_PACKAGE, SUBSCRIPTION_STATES, GoogleError,
                                       _account_ids, bad, fields, millis, new_order_id, new_purchase_token, now_ms,
                                       typed)

SUB_FIELDS = {"packageName", "token", "productId", "lineItems", "state", "test", "orderId",
              "regionCode", "startTime", "expiryTime", "acknowledged", "autoRenewEnabled",
              "basePlanId", "offerId", "linkedPurchaseToken", *ACCOUNT_FIELDS}
SUB_PATCH = {"state", "expiryTime", "acknowledged", "autoRenewEnabled", "test", "regionCode",
             *ACCOUNT_FIELDS}
SUB_LINE_FIELDS = {"productId", "expiryTime", "autoRenewEnabled", "basePlanId", "offerId"}


class PlaySubscriptions:
    """Subscriptions by purchase token (``self.subscriptions``), guarded by ``self.lock``; ``PlayStore`` sets both
    and checks a new token against its one-time products too (``self.products``)."""

    def create_subscription(self, body) -> dict:
        fields(body, SUB_FIELDS, "the body")
        now = now_ms()
        state = typed(body, "state", str, "SUBSCRIPTION_STATE_ACTIVE", SUBSCRIPTION_STATES)
        order_id = typed(body, "orderId", str) or new_order_id()
        subscription = {"packageName": typed(body, "packageName", str, DEFAULT_PACKAGE),
                        "token": typed(body, "token", str) or new_purchase_token(),
                        "baseOrderId": order_id, "latestOrderId": order_id, "renewals": 0,
                        "lineItems": self._sub_lines(body, now, order_id), "state": state,
                        "test": typed(body, "test", bool, False),
                        "acknowledged": typed(body, "acknowledged", bool, False),
                        "regionCode": typed(body, "regionCode", str, "US"),
                        "startTime": millis(body, "startTime", now),
                        **_account_ids(body, {})}
        if body.get("linkedPurchaseToken") is not None:
            subscription["linkedPurchaseToken"] = typed(body, "linkedPurchaseToken", str)
        with self.lock:
            token = subscription["token"]
            if token in self.products or token in self.subscriptions:
                raise GoogleError(409, f"purchase token {token} already exists",
                                  "alreadyExists", "ALREADY_EXISTS")
            self.subscriptions[token] = subscription
        return dict(subscription)

    @staticmethod
    def _sub_lines(body: dict, now: int, order_id: str) -> list[dict]:
        if "lineItems" in body and "productId" in body:
            raise bad("give productId or lineItems, not both")
        raw = body.get("lineItems")
        if raw is None:
            raw = [{k: body[k] for k in SUB_LINE_FIELDS if k in body}]
        if not isinstance(raw, list) or not raw:
            raise bad("lineItems must be a non-empty list")
        lines = []
        for item in raw:
            fields(item, SUB_LINE_FIELDS, "a line item")
            product_id = typed(item, "productId", str)
            if not product_id:
                raise bad("productId is required")
            line = {"productId": product_id, "expiryMillis": millis(item, "expiryTime",
                                                                    now + 30 * DAY_MS),
                    "autoRenewEnabled": typed(item, "autoRenewEnabled", bool, True),
                    "basePlanId": typed(item, "basePlanId", str, "monthly"),
                    "latestSuccessfulOrderId": order_id}
            if item.get("offerId") is not None:
                line["offerId"] = typed(item, "offerId", str)
            lines.append(line)
        return lines

    def _subscription(self, token: str, package: str | None = None) -> dict:
        subscription = self.subscriptions.get(token)
        if subscription is None or package is not None and subscription["packageName"] != package:
            raise GoogleError(404, "The purchase token was not found.", "purchaseTokenNotFound",
                              domain="androidpublisher")
        return subscription

    def subscription(self, package: str | None, token: str) -> dict:
        with self.lock:
            return self._subscription(token, package)

    def update_subscription(self, token: str, body) -> dict:
        fields(body, SUB_PATCH, "the body")
        with self.lock:
            old = self._subscription(token)
            new = {**old, **_account_ids(body, old)}
            new["state"] = typed(body, "state", str, old["state"], SUBSCRIPTION_STATES)
            for key in ("test", "acknowledged"):
                new[key] = typed(body, key, bool, old[key])
            new["regionCode"] = typed(body, "regionCode", str, old["regionCode"])
            lines = []
            for line in old["lineItems"]:
                line = dict(line)
                line["expiryMillis"] = millis(body, "expiryTime", line["expiryMillis"])
                line["autoRenewEnabled"] = typed(body, "autoRenewEnabled", bool,
                                                 line["autoRenewEnabled"])
                lines.append(line)
            new["lineItems"] = lines
            self.subscriptions[token] = new
        return dict(new)

    def renew(self, token: str, body) -> dict:
        """A renewal order: latestOrderId ``<first order>..N`` (N from 0), expiry moved on."""
        fields(body or {}, {"expiryTime", "periodDays"}, "the body")
        body = body or {}
        period = typed(body, "periodDays", int, 30, minimum=1) * DAY_MS
        with self.lock:
            old = self._subscription(token)
            order_id = f"{old['baseOrderId']}..{old['renewals']}"
            lines = []
            for line in old["lineItems"]:
                start = max(line["expiryMillis"], now_ms())
                lines.append({**line, "latestSuccessfulOrderId": order_id,
                              "expiryMillis": millis(body, "expiryTime", start + period)})
            new = {**old, "renewals": old["renewals"] + 1, "latestOrderId": order_id,
                   "lineItems": lines, "state": "SUBSCRIPTION_STATE_ACTIVE"}
            self.subscriptions[token] = new
        return dict(new)

    def acknowledge_subscription(self, package: str, subscription_id: str, token: str,
                                 payload: str | None) -> None:
        with self.lock:
            subscription = self._subscription(token, package)
            if all(line["productId"] != subscription_id for line in subscription["lineItems"]):
                raise bad("The subscription purchase token does not match the subscription ID.")
            if subscription["state"] in ("SUBSCRIPTION_STATE_PENDING",
                                         "SUBSCRIPTION_STATE_PENDING_PURCHASE_CANCELED"):
                raise GoogleError(400, "The subscription purchase is not in a valid state to "
                                  "perform the desired operation.", "invalidPurchaseState",
                                  "FAILED_PRECONDITION", domain="androidpublisher")
            self.subscriptions[token] = {**subscription, "acknowledged": True}
