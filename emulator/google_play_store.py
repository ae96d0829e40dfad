"""The fake Google Play API's purchases (emulator/google_play_api.py): one-time product purchases,
subscriptions (``PlaySubscriptions``, emulator/google_play_subscriptions.py) and voided purchases of every
package, in memory behind one lock.

Stored purchases are never changed in place (an update stores a new dict), so a reader may render
what it got after the lock is released. Wire shapes: google_play_wire.py; service accounts and
access tokens: google_play_auth.py.
"""
from __future__ import annotations

import threading

from emulator.google_play_subscriptions import PlaySubscriptions
from emulator.google_play_wire import (
    ACCOUNT_FIELDS,
    DEFAULT_PACKAGE,
    PURCHASE_STATES,
    GoogleError,
    _account_ids,
    bad,
    fields,
    millis,
    new_order_id,
    new_purchase_token,
    now_ms,
    render_voided,
    typed,
)

PRODUCT_FIELDS = {"packageName", "token", "productId", "quantity", "lineItems", "state", "test",
                  "orderId", "regionCode", "purchaseTimeMillis", "acknowledged", "consumed",
                  "developerPayload", *ACCOUNT_FIELDS}
PRODUCT_PATCH = PRODUCT_FIELDS - {"packageName", "token", "productId", "purchaseTimeMillis"} | {
    "refundableQuantity"}
LINE_FIELDS = {"productId", "quantity", "refundableQuantity", "offerId", "purchaseOptionId"}
VOID_FIELDS = {"purchaseToken", "orderId", "productId", "voidedQuantity", "voidedReason",
               "voidedSource", "voidedTimeMillis"}


def product_lines(body: dict) -> list[dict]:
    if "lineItems" in body and ("productId" in body or "quantity" in body):
        raise bad("give productId (+quantity) or lineItems, not both")
    raw = body.get("lineItems")
    if raw is None:
        raw = [{"productId": body.get("productId"), "quantity": body.get("quantity", 1)}]
    if not isinstance(raw, list) or not raw:
        raise bad("lineItems must be a non-empty list")
    lines = []
    for item in raw:
        fields(item, LINE_FIELDS, "a line item")
        product_id = typed(item, "productId", str)
        if not product_id:
            raise bad("productId is required")
        quantity = typed(item, "quantity", int, 1, minimum=1)
        refundable = typed(item, "refundableQuantity", int, quantity, minimum=0)
        line = {"productId": product_id, "quantity": quantity,
                "refundableQuantity": min(refundable, quantity)}
        for key in ("offerId", "purchaseOptionId"):
            if item.get(key) is not None:
                line[key] = typed(item, key, str)
        lines.append(line)
    return lines


class PlayStore(PlaySubscriptions):
    """Purchases, subscriptions and voided purchases of every package, behind one lock."""

    def __init__(self):
        self.lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with self.lock:
            self.products: dict[str, dict] = {}
            self.subscriptions: dict[str, dict] = {}
            self.voided: list[dict] = []

    # -- one-time products ------------------------------------------------------------------

    def create_product(self, body) -> dict:
        fields(body, PRODUCT_FIELDS, "the body")
        now = now_ms()
        state = typed(body, "state", str, "PURCHASED", PURCHASE_STATES)
        bought = millis(body, "purchaseTimeMillis", now)
        product = {"packageName": typed(body, "packageName", str, DEFAULT_PACKAGE),
                   "token": typed(body, "token", str) or new_purchase_token(),
                   "orderId": typed(body, "orderId", str) or new_order_id(),
                   "lineItems": product_lines(body), "state": state,
                   "test": typed(body, "test", bool, False),
                   "acknowledged": typed(body, "acknowledged", bool, False),
                   "consumed": typed(body, "consumed", bool, False),
                   "regionCode": typed(body, "regionCode", str, "US"),
                   "developerPayload": typed(body, "developerPayload", str, ""),
                   "purchaseTimeMillis": bought,
                   "completionTimeMillis": bought if state != "PENDING" else None,
                   **_account_ids(body, {})}
        with self.lock:
            if product["token"] in self.products or product["token"] in self.subscriptions:
                raise GoogleError(409, f"purchase token {product['token']} already exists",
                                  "alreadyExists", "ALREADY_EXISTS")
            self.products[product["token"]] = product
        return dict(product)

    def update_product(self, token: str, body) -> dict:
        fields(body, PRODUCT_PATCH, "the body")
        if "lineItems" in body and ("quantity" in body or "refundableQuantity" in body):
            raise bad("give quantity/refundableQuantity (first line) or lineItems, not both")
        with self.lock:
            old = self._product(token)
            new = {**old, **_account_ids(body, old)}
            for key in ACCOUNT_FIELDS:
                if key in body and body[key] is None:
                    new.pop(key, None)
            if "lineItems" in body:
                new["lineItems"] = product_lines(body)
            elif "quantity" in body or "refundableQuantity" in body:
                first = dict(old["lineItems"][0])
                first["quantity"] = typed(body, "quantity", int, first["quantity"], minimum=1)
                first["refundableQuantity"] = min(first["quantity"], typed(
                    body, "refundableQuantity", int, first["refundableQuantity"], minimum=0))
                new["lineItems"] = [first, *old["lineItems"][1:]]
            new["state"] = typed(body, "state", str, old["state"], PURCHASE_STATES)
            for key, type_ in (("test", bool), ("acknowledged", bool), ("consumed", bool),
                               ("orderId", str), ("regionCode", str), ("developerPayload", str)):
                new[key] = typed(body, key, type_, old[key])
            if new["state"] != "PENDING" and old["completionTimeMillis"] is None:
                new["completionTimeMillis"] = now_ms()
            self.products[token] = new
        return dict(new)

    def _product(self, token: str, package: str | None = None) -> dict:
        product = self.products.get(token)
        if product is None or package is not None and product["packageName"] != package:
            raise GoogleError(404, "The purchase token was not found.", "purchaseTokenNotFound",
                              domain="androidpublisher")
        return product

    def product(self, package: str | None, token: str) -> dict:
        with self.lock:
            return self._product(token, package)

    def product_line(self, package: str, product_id: str, token: str) -> tuple[dict, dict]:
        with self.lock:
            return self._product_line(package, product_id, token)

    def _product_line(self, package: str, product_id: str, token: str) -> tuple[dict, dict]:
        product = self._product(token, package)
        for line in product["lineItems"]:
            if line["productId"] == product_id:
                return product, line
        raise bad("The purchase token does not match the product ID.")

    def consume_or_acknowledge(self, package: str, product_id: str, token: str, action: str,
                               payload: str | None) -> None:
        with self.lock:
            product, _ = self._product_line(package, product_id, token)
            if product["state"] != "PURCHASED":
                raise GoogleError(400, "The purchase is not in a valid state to perform the "
                                  "desired operation.", "invalidPurchaseState",
                                  "FAILED_PRECONDITION", domain="androidpublisher")
            new = {**product, "acknowledged": True}
            if action == "consume":
                new["consumed"] = True
            if payload is not None:
                new["developerPayload"] = payload
            self.products[token] = new

    # -- voided purchases -------------------------------------------------------------------

    def void(self, body) -> dict:
        """Record a refund/chargeback; a one-time purchase loses refundable quantity (all of it
        without ``voidedQuantity``) and turns CANCELLED when nothing refundable is left."""
        fields(body, VOID_FIELDS, "the body")
        token = typed(body, "purchaseToken", str)
        if not token:
            raise bad("purchaseToken is required")
        quantity = typed(body, "voidedQuantity", int, minimum=1)
        entry = {"purchaseToken": token,
                 "voidedTimeMillis": millis(body, "voidedTimeMillis", now_ms()),
                 "voidedSource": typed(body, "voidedSource", int, 0, (0, 1, 2)),
                 "voidedReason": typed(body, "voidedReason", int, 0, tuple(range(8)))}
        with self.lock:
            if token in self.subscriptions:
                if quantity is not None:
                    raise bad("voidedQuantity applies to one-time purchases only")
                subscription = self.subscriptions[token]
                entry.update(kind="subscription", packageName=subscription["packageName"],
                             orderId=subscription["latestOrderId"],
                             purchaseTimeMillis=subscription["startTime"])
            else:
                product = self._product(token)
                entry.update(kind="product", packageName=product["packageName"],
                             orderId=product["orderId"],
                             purchaseTimeMillis=product["purchaseTimeMillis"])
                self.products[token] = self._refund(product, quantity, body.get("productId"))
            if body.get("orderId") is not None:
                entry["orderId"] = typed(body, "orderId", str)
            if quantity is not None:
                entry["voidedQuantity"] = quantity
            entry["seq"] = len(self.voided)
            self.voided.append(entry)
        return render_voided(entry)

    @staticmethod
    def _refund(product: dict, quantity: int | None, product_id) -> dict:
        lines = [dict(line) for line in product["lineItems"]]
        if quantity is None:
            for line in lines:
                line["refundableQuantity"] = 0
        else:
            line = next((x for x in lines if product_id in (None, x["productId"])), None)
            if line is None:
                raise bad(f"the purchase has no line item {product_id}")
            if quantity > line["refundableQuantity"]:
                raise bad(f"voidedQuantity {quantity} > refundableQuantity "
                          f"{line['refundableQuantity']}")
            line["refundableQuantity"] -= quantity
        refunded = all(x["refundableQuantity"] == 0 for x in lines)
        state = "CANCELLED" if refunded else product["state"]
        return {**product, "lineItems": lines, "state": state}

    def list_voided(self, package: str, window: dict, max_results: int) -> tuple[list, dict | None]:
        """One page of voided purchases (oldest first) and the cursor of the next, if any."""
        after = tuple(window.get("after") or (-1, -1))
        with self.lock:
            matches = [e for e in self.voided
                       if e["packageName"] == package
                       and window["start"] <= e["voidedTimeMillis"] <= window["end"]
                       and (window["type"] == 1 or e["kind"] == "product")
                       and (window["partial"] or "voidedQuantity" not in e)
                       and (e["voidedTimeMillis"], e["seq"]) > after]
        matches.sort(key=lambda e: (e["voidedTimeMillis"], e["seq"]))
        page = matches[:max_results]
        more = None
        if len(matches) > max_results:
            more = {**window, "after": [page[-1]["voidedTimeMillis"], page[-1]["seq"]]}
        return [render_voided(e) for e in page], more
