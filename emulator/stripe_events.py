"""The Stripe fake's events: ``GET /v1/events`` as Stripe serves it, and ``POST /_stripe/events`` to
create one (what Stripe would have sent to a webhook endpoint while the bridge was down).

    GET /v1/events   type (one type, ``*`` wildcards), types[] (up to 20), created / created[gt|gte|lt|lte],
                     delivery_success, limit, starting_after | ending_before; newest first, 30 days kept

An event is seen only with a key of its mode (``livemode``), as on Stripe.
"""
from __future__ import annotations

import fnmatch
import re
import threading
import time

from flask import Flask, g, request

from emulator.fake_api import json_body
from emulator.stripe_params import PAGE_PARAMS, StripeError, list_object, new_id

API_VERSION = "2025-03-31.basil"
KEPT_SECONDS = 30 * 86_400
CREATED = re.compile(r"created(?:\[(gt|gte|lt|lte)\])?\Z")
TYPES = re.compile(r"types\[\d*\]\Z")


class EventBook:
    def __init__(self):
        self.lock = threading.Lock()
        self.events: list[dict] = []

    def reset(self) -> None:
        with self.lock:
            self.events = []

    def create(self, body) -> dict:
        if not isinstance(body, dict) or not isinstance(body.get("type"), str) or not isinstance(body.get("object"), dict):
            raise StripeError(400, "an event needs type (string) and object (the event's data.object)")
        created = body.get("created", int(time.time()))
        livemode = bool(body.get("livemode", body["object"].get("livemode", False)))
        event = {"id": body.get("id") or new_id("evt", 24), "object": "event", "api_version": API_VERSION,
                 "created": created, "data": {"object": body["object"]}, "livemode": livemode,
                 "pending_webhooks": 0 if body.get("delivered") else 1,
                 "request": {"id": None, "idempotency_key": None}, "type": body["type"]}
        if body.get("account"):  # Stripe Connect: the connected account the object lives on
            event["account"] = body["account"]
        with self.lock:
            self.events.append(event)
        return event

    def list(self, mode: str | None, params: dict, types: list[str], created: dict, delivered) -> list[dict]:
        oldest = int(time.time()) - KEPT_SECONDS
        checks = {"gt": lambda c, v: c > v, "gte": lambda c, v: c >= v, "lt": lambda c, v: c < v,
                  "lte": lambda c, v: c <= v, "eq": lambda c, v: c == v}
        with self.lock:
            events = list(self.events)
        out = []
        for event in events:
            if event["created"] < oldest or (mode is not None and event["livemode"] != (mode == "live")):
                continue
            if params.get("type") and not fnmatch.fnmatchcase(event["type"], params["type"]):
                continue
            if types and event["type"] not in types:
                continue
            if not all(checks[op](event["created"], value) for op, value in created.items()):
                continue
            if delivered is not None and (event["pending_webhooks"] == 0) != delivered:
                continue
            out.append(event)
        return sorted(out, key=lambda e: (e["created"], e["id"]), reverse=True)


def _read_query() -> tuple[dict, list[str], dict, bool | None]:
    params, types, created, delivered = {}, [], {}, None
    for key in request.args:
        value = request.args.getlist(key)[-1]
        match = CREATED.fullmatch(key)
        if match:
            if not value.isdigit():
                raise StripeError(400, f"Invalid integer: {value}", code="parameter_invalid_integer", param=key)
            created[match.group(1) or "eq"] = int(value)
        elif TYPES.fullmatch(key):
            types += request.args.getlist(key)
        elif key == "delivery_success":
            if value not in ("true", "false"):
                raise StripeError(400, f"Invalid boolean: {value}", param=key)
            delivered = value == "true"
        elif key in PAGE_PARAMS or key == "type":
            params[key] = value or None
        else:
            raise StripeError(400, f"Received unknown parameter: {key}", code="parameter_unknown", param=key)
    if len(types) > 20:
        raise StripeError(400, "types may hold at most 20 event types", param="types")
    if params.get("type") and types:
        raise StripeError(400, "You may only specify one of these parameters: type, types.", param="types")
    return params, types, created, delivered


def register_events(app: Flask, book: EventBook) -> None:
    @app.get("/v1/events")
    def list_events():
        params, types, created, delivered = _read_query()
        return list_object(book.list(g.mode, params, types, created, delivered), "/v1/events", params, "event")

    @app.post("/_stripe/events")
    def admin_create_event():
        return book.create(json_body(lambda message: StripeError(400, message)))
