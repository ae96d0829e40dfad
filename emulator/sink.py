"""A sink endpoint the emulator serves for ``make run``: ``POST /_emulator/sinks/<name>`` takes the bridge's
deliveries (Standard Webhooks, verified with the sink's secret from the emulator's ``[sinks]`` table) and keeps
the newest ones; ``GET /_emulator/sinks/<name>`` shows them, newest first. A stand-in for a CRM, so the
Kraty -> bridge -> CRM half of the product can be seen on one machine."""
from __future__ import annotations

import json
import threading
from collections import deque

from flask import Flask, Response, request
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

KEEP = 200


class Sinks:
    def __init__(self, secrets: dict[str, str]):
        self.webhooks = {name: Webhook(secret) for name, secret in secrets.items()}
        self.received = {name: deque(maxlen=KEEP) for name in secrets}
        self.lock = threading.Lock()

    def take(self, name: str, headers, body: bytes) -> tuple[int, dict]:
        webhook = self.webhooks.get(name)
        if webhook is None:
            return 404, {"error": f"no sink {name}"}
        try:
            payload = webhook.verify(body, {k.lower(): v for k, v in headers.items()})
        except WebhookVerificationError as exc:
            return 401, {"error": f"signature: {exc}"}
        with self.lock:
            self.received[name].appendleft({"webhookId": headers.get("webhook-id"), "event": payload})
        return 200, {"ok": True}

    def listing(self, name: str) -> tuple[int, dict]:
        if name not in self.received:
            return 404, {"error": f"no sink {name}"}
        with self.lock:
            events = list(self.received[name])
        return 200, {"sink": name, "count": len(events), "events": events}


def register_sinks(app: Flask, secrets: dict[str, str]) -> None:
    sinks = Sinks(secrets)

    def answer(status: int, body: dict) -> Response:
        return Response(json.dumps(body), status, mimetype="application/json")

    @app.post("/_emulator/sinks/<name>")
    def sink_post(name):
        return answer(*sinks.take(name, request.headers, request.get_data()))

    @app.get("/_emulator/sinks/<name>")
    def sink_get(name):
        return answer(*sinks.listing(name))
