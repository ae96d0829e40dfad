"""The ingest baseline: a bare Flask app on the fulfil PUT's path that answers a constant.

    gunicorn bench.bare_app:app      (served with exactly the settings the real app gets)
"""
from __future__ import annotations

from flask import Flask

BODY = b'{"state":"FULFILLED"}'

app = Flask(__name__)


@app.put("/platform/v2/admin/namespaces/<namespace>/users/<user_id>/fulfillments/<transaction_id>")
def fulfil(namespace, user_id, transaction_id):
    return BODY, 200, {"Content-Type": "application/json"}
