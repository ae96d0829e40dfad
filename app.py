"""The app factory: the only place that wires kraty-bridge's parts together. No I/O at import.

    gunicorn 'app:create_app()'
"""
from __future__ import annotations

from flask import Flask

from config.catalog import Catalog, load_catalog
from config.catalog_schema import ConfigFileError
from config.settings import Settings, SettingsError, load_settings
from config.sinks import Sinks, load_sinks
from config.storefronts import Storefronts, load_storefronts
from middleware import logs
from middleware.console import mount as console
from middleware.cli import commands
from middleware.cli import guard
from middleware.metrics import tracing
from middleware.api import (accelbyte, app_store_webhook, body_limit, errors, google_play_webhook, health,
                            kraty_webhook, privacy, receipts, stripe_webhook, v1)
from middleware.api import sinks as sinks_api
from middleware.api import audit, fulfilments, imports, players
from middleware.api import refunds as refunds_api  # noqa: F401  (adds POST /v1/fulfilments/<id>/actions/refund)
from middleware.api import search as search_api
from middleware.metrics import exposition as metrics
from middleware.services import Services
from workers.queues import RqJobs


def build_services(settings: Settings, catalog: Catalog, storefronts: Storefronts, sinks: Sinks) -> Services:
    """The services an app runs on (``svc``), from what ``create_app`` loaded; the enqueue side is RQ's
    (``svc.jobs``: ``workers.queues.RqJobs``). The tests' app cache builds each test's fresh services here too."""
    return Services(settings, catalog, storefronts, sinks, jobs=RqJobs)


def create_app(config: Settings | dict | None = None) -> Flask:
    """Build the app. ``config``: a Settings, or a dict of Settings fields overriding the environment."""
    if config is None and guard.in_cli():
        guard.use_run_environment()  # beside `make run`: its Redis, ledger and catalog (instance/environment)
    try:
        settings = config if isinstance(config, Settings) else load_settings(**(config or {}))
        logs.configure_logging(settings.log_level, settings.log_json)
        tracing.configure(settings)  # KB_OTEL_ENABLED: the OTLP exporter, once per process
        catalog = load_catalog(settings.catalog_path)
        storefronts = load_storefronts(settings.storefronts_path, known_namespaces=catalog.games)
        sinks = load_sinks(settings.sinks_path)
    except (SettingsError, ConfigFileError) as exc:
        guard.refuse(exc)  # the flask CLI: the message and exit status 1, no traceback
        raise

    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    app.json.sort_keys = False
    app.extensions["kraty_bridge"] = build_services(settings, catalog, storefronts, sinks)

    logs.register_request_ids(app)
    body_limit.register(app)  # a chunked body over KB_MAX_BODY_BYTES: 413, as one with a Content-Length
    tracing.init_app(app)  # a span per request (when tracing is on)
    errors.register(app)
    app.register_blueprint(health.bp)
    app.register_blueprint(accelbyte.bp)
    app.register_blueprint(stripe_webhook.bp)
    app.register_blueprint(app_store_webhook.bp)
    app.register_blueprint(google_play_webhook.bp)
    app.register_blueprint(kraty_webhook.bp)
    v1.init_api(app, [receipts.blp, sinks_api.blp, privacy.blp, fulfilments.blp, audit.blp, search_api.blp, players.blp,
                      imports.blp])
    metrics.init_app(app)  # GET /metrics (KB_METRICS_KEY), refused ingest requests counted
    console.register(app)  # /console, the ops web console (KB_SECRET_KEY)
    commands.register(app)
    return app
