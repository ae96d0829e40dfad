"""The Google Play fake's ``orders.refund``: what the bridge's refund action calls.

    POST /androidpublisher/v3/applications/{packageName}/orders/{orderId}:refund?revoke=true|false   -> {}

The order (a one-time purchase's ``orderId``, or a subscription's latest order) is refunded as a developer
refund: it becomes a voided purchase (``voidedSource`` 1, developer; ``voidedReason`` 0, other) that
``voidedpurchases.list`` serves, as Google does — with or without ``revoke``. An order the fake does not know
is Google's 404; one already refunded in full is a 400.
"""
from __future__ import annotations

from flask import Flask

from emulator.google_play_store import PlayStore
from emulator.google_play_wire import GoogleError, bad

DEVELOPER, OTHER = 1, 0


def _token_of(store: PlayStore, package: str, order_id: str) -> tuple[str, bool]:
    """(the purchase token of the order, whether it is already refunded in full)."""
    with store.lock:
        for token, product in store.products.items():
            if product["packageName"] == package and product["orderId"] == order_id:
                return token, all(line["refundableQuantity"] == 0 for line in product["lineItems"])
        for token, subscription in store.subscriptions.items():
            if subscription["packageName"] == package and subscription["latestOrderId"] == order_id:
                refunded = any(v["purchaseToken"] == token and v.get("orderId") == order_id for v in store.voided)
                return token, refunded
    raise GoogleError(404, f"The order {order_id} was not found.", "orderNotFound", domain="androidpublisher")


def register_orders(app: Flask, store: PlayStore, query) -> None:
    @app.post("/androidpublisher/v3/applications/<package>/orders/<order_action>")
    def refund_order(package, order_action):
        order_id, sep, action = order_action.rpartition(":")
        if not sep or not order_id or action != "refund":
            raise GoogleError(404, "Method not found.")
        revoke = query({"revoke"}).get("revoke", "false").lower()
        if revoke not in ("true", "false"):
            raise bad(f"Invalid value at 'revoke' (TYPE_BOOL), \"{revoke}\"")
        token, refunded = _token_of(store, package, order_id)
        if refunded:
            raise GoogleError(400, "The order has already been refunded.", "orderAlreadyRefunded",
                              domain="androidpublisher")
        store.void({"purchaseToken": token, "orderId": order_id, "voidedSource": DEVELOPER, "voidedReason": OTHER})
        return {}
