"""The ingest baselines: a bare Flask app on the real endpoints' paths that answers a constant.

    gunicorn bench.bare_app:app      (served with exactly the settings the real app gets)

- the fulfil PUT (``bench/ingest.py``);
- the Stripe webhook POST (``bench/stripe_ingest.py``): reads the body, answers a small JSON 200;
- the App Store notification POST (``bench/app_store_ingest.py``): the same;
- the Google Play push POST (``bench/google_play_ingest.py``): the same;
- the Kraty webhook POST (``bench/kraty_webhooks.py``): the same.
"""
from __future__ import annotations

from flask import Flask, request

BODY = b'{"state":"FULFILLED"}'
STRIPE_BODY = b'{"received":true}'
APP_STORE_BODY = b'{"received":true}'
GOOGLE_PLAY_BODY = b'{"received":true}'
KRATY_BODY = b'{"received":true}'

app = Flask(__name__)


@app.put("/platform/v2/admin/namespaces/<namespace>/users/<user_id>/fulfillments/<transaction_id>")
def fulfil(namespace, user_id, transaction_id):
    return BODY, 200, {"Content-Type": "application/json"}


@app.post("/webhooks/stripe/<namespace>")
def stripe_event(namespace):
    request.get_data(cache=False)
    return STRIPE_BODY, 200, {"Content-Type": "application/json"}


@app.post("/webhooks/app-store")
def app_store_notification():
    request.get_data(cache=False)
    return APP_STORE_BODY, 200, {"Content-Type": "application/json"}


@app.post("/webhooks/google-play")
def google_play_push():
    request.get_data(cache=False)
    return GOOGLE_PLAY_BODY, 200, {"Content-Type": "application/json"}


@app.post("/webhooks/kraty")
def kraty_webhook():
    request.get_data(cache=False)
    return KRATY_BODY, 200, {"Content-Type": "application/json"}
