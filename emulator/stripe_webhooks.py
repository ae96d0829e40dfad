"""The Stripe fake's webhook endpoint: the refund events it records, POSTed signed to one URL, as Stripe does.

    PUT /_stripe/webhook_endpoint     {"url": "http://127.0.0.1:8000/webhooks/stripe/demo", "secret": "whsec_..."}
                                      (``{"url": null}`` turns it off; off by default)
    GET /_stripe/webhook_deliveries   {"deliveries": [{"event", "type", "status", "error"}...]}, oldest first

Each event goes out from a background thread (the API answer never waits for it), with the ``Stripe-Signature``
Stripe sends (``t=<unix>,v1=<HMAC-SHA256 of "t.body">``), tried up to three times on a connection error or a
non-2xx answer.
"""
from __future__ import annotations

import json
import queue
import threading
from collections import deque

import requests
from flask import Flask

from emulator.fake_api import json_body
from emulator.stripe_demo import sign
from emulator.stripe_store import StripeError

TRIES, TIMEOUT = 3, 5.0


class WebhookSender:
    def __init__(self):
        self.lock = threading.Lock()
        self.queue: queue.Queue = queue.Queue(maxsize=10000)
        self.thread: threading.Thread | None = None
        self.reset()

    def reset(self) -> None:
        with self.lock:
            self.url, self.secret = None, None
            self.log: deque = deque(maxlen=1000)

    def configure(self, url: str | None, secret: str | None) -> None:
        with self.lock:
            self.url, self.secret = url, secret

    def send(self, event: dict) -> None:
        with self.lock:
            if self.url is None:
                return
            target = (self.url, self.secret)
            if self.thread is None or not self.thread.is_alive():
                self.thread = threading.Thread(target=self._run, name="stripe-fake-webhooks", daemon=True)
                self.thread.start()
        self.queue.put((event, target))

    def deliveries(self) -> list[dict]:
        with self.lock:
            return list(self.log)

    def _run(self) -> None:
        http = requests.Session()
        http.trust_env = False
        while True:
            event, (url, secret) = self.queue.get()
            record = {"event": event["id"], "type": event["type"], "status": None, "error": None}
            body = json.dumps(event).encode()
            for _ in range(TRIES):
                try:
                    answer = http.post(url, data=body, timeout=TIMEOUT, headers={
                        "Content-Type": "application/json; charset=utf-8", "Stripe-Signature": sign(body, secret)})
                    record.update(status=answer.status_code, error=None)
                    if answer.status_code < 300:
                        break
                except requests.RequestException as exc:
                    record["error"] = exc.__class__.__name__
            with self.lock:
                self.log.append(record)


def register_webhooks(app: Flask, sender: WebhookSender) -> None:
    @app.put("/_stripe/webhook_endpoint")
    def admin_webhook_endpoint():
        body = json_body(lambda message: StripeError(400, message))
        url, secret = (body.get("url"), body.get("secret")) if isinstance(body, dict) else (None, None)
        if url is not None and not (isinstance(url, str) and url.startswith(("http://", "https://"))
                                    and isinstance(secret, str) and secret):
            raise StripeError(400, "url: an http(s) URL (or null to turn it off) and secret: the endpoint's "
                                   "signing secret", param="url")
        sender.configure(url, secret)
        return {"url": url}

    @app.get("/_stripe/webhook_deliveries")
    def admin_webhook_deliveries():
        return {"deliveries": sender.deliveries()}
