"""``GET /metrics`` behind a bearer key (``KB_METRICS_KEY``), and the count of refused ingest requests.

One process (tests, ``flask run``): the default registry. Under ``PROMETHEUS_MULTIPROC_DIR`` (gunicorn with
``-c config/gunicorn.conf.py`` sets one up when it is not set): every gunicorn and RQ worker process writes
its counters and histograms to files there, and a scrape adds the files up. The scrape-time gauges
(queues, ledger) are read through the app's own database engine and Redis client.
"""
from __future__ import annotations

import hmac

from flask import Blueprint, Flask, Response, g, request
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from middleware.api.errors import ApiError
from middleware.services import services

from middleware.metrics import http, recorders
from middleware.metrics.listener import Scrape

# the endpoints that take store events, receipts and orders -> the source they count under
INGEST_ENDPOINTS = {
    "stripe_webhook.receive": "stripe", "app_store_webhook.receive": "app_store",
    "google_play_webhook.receive": "google_play", "kraty_webhook.receive": "kraty",
    "receipts.app_store": "app_store", "receipts.google_play": "google_play",
    "accelbyte.fulfil_v2": "accelbyte", "accelbyte.fulfil_v3": "accelbyte", "accelbyte.bulk_v3": "accelbyte",
}
NOT_CONFIGURED = "The requested URL was not found on the server."

bp = Blueprint("metrics", __name__)


def _app_scrape() -> Scrape:
    svc = services()
    scrape = getattr(svc, "metrics_scrape", None)
    if scrape is None:
        scrape = Scrape(lambda: svc.engine, lambda: svc.redis, [sink.name for sink in svc.sinks])
        svc.metrics_scrape = scrape
    return scrape


@bp.get("/metrics")
def metrics():
    key = services().settings.metrics_key
    if key is None:  # not served on the app's port (perhaps on KB_METRICS_BIND)
        raise ApiError(404, "not_found", NOT_CONFIGURED)
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), key.encode()):
        raise ApiError(401, "unauthenticated", "/metrics needs Authorization: Bearer <KB_METRICS_KEY>")
    return Response(generate_latest(_app_scrape()), mimetype=CONTENT_TYPE_LATEST)


def _count_refused_ingest(response):
    """A request to an ingest endpoint refused before anything was recorded: rejected (4xx) or error (5xx)."""
    if response.status_code < 400:
        return response
    source = INGEST_ENDPOINTS.get(request.endpoint or "")
    if source is not None and not g.get("kb_ingest_counted"):
        recorders.ingest_refused(source, response.status_code)
    return response


def init_app(app: Flask) -> None:
    """Register ``GET /metrics``, the request metrics and the count of refused ingest requests."""
    http.init_app(app)
    app.register_blueprint(bp)
    app.after_request(_count_refused_ingest)
