"""Flask app factory for the Kraty emulator, plus the ``/_emulator`` admin API.

``create_app(config)`` takes a config dict (see config.py; raw or normalized) and builds a fresh,
independent emulator: no state, threads or I/O at import. Webhook threads start lazily on the
first event. The admin API is for local tools and tests: no auth, loopback clients only.
"""
from __future__ import annotations

import json

from flask import Flask, Response, request
from werkzeug.exceptions import HTTPException

from emulator import config as config_mod
from emulator.fastpath import FastPath
from emulator.faults import FaultMiddleware, Faults, Stats
from emulator.model import ApiError
from emulator.routes import error_response, json_body, register
from emulator.sink import register_sinks
from emulator.state import Store
from emulator.webhooks import Dispatcher

LOOPBACK = ("127.", "::1", "::ffff:127.")


class Emulator:
    """Everything one emulator instance holds; ``app.extensions["kraty_emulator"]``."""

    def __init__(self, cfg: dict):
        self.config = cfg
        self.store = Store(cfg)
        self.faults = Faults()
        self.stats = Stats()
        self.dispatcher = Dispatcher(
            cfg["studio_id"], cfg["webhook_url"], cfg["webhook_secret"],
            retries=cfg["webhook_retries"], backoff=cfg["webhook_backoff"],
            queue_size=cfg["webhook_queue_size"])
        for game_id, game in cfg["games"].items():
            self.dispatcher.set_target(game_id, game["webhook_url"], game["webhook_secret"])

    def reset(self) -> None:
        self.store.reset()
        self.faults.clear()
        self.stats.reset()
        self.dispatcher.clear_log()


def create_app(config: dict | None = None) -> Flask:
    cfg = config_mod.normalize(config or {})
    app = Flask("emulator")
    app.json.sort_keys = False
    emu = Emulator(cfg)
    app.extensions["kraty_emulator"] = emu
    app.wsgi_app = FaultMiddleware(FastPath(app.wsgi_app, emu), emu.faults, emu.stats)

    @app.errorhandler(ApiError)
    def api_error(err: ApiError):
        headers = {"Retry-After": "1"} if err.status == 429 else None
        return error_response(err, headers)

    @app.errorhandler(HTTPException)
    def http_error(err: HTTPException):
        code = {404: "not_found", 405: "method_not_allowed"}.get(err.code, "http_error")
        return error_response(ApiError(err.code or 500, code, err.description or code))

    @app.errorhandler(Exception)
    def unexpected(err: Exception):
        app.logger.exception("emulator error")
        return error_response(ApiError(500, "internal_error", "internal emulator error"))

    register(app, emu)
    register_admin(app, emu)
    register_sinks(app, cfg.get("sinks") or {})
    return app


def plain(obj) -> Response:
    """Admin answers are plain JSON objects (no ``data`` envelope)."""
    return Response(json.dumps(obj), 200, mimetype="application/json")


def _public_game(cfg: dict) -> dict:
    return {**{k: v for k, v in cfg.items() if k != "webhook_secret"},
            "webhook_secret_set": bool(cfg["webhook_secret"])}


def register_admin(app: Flask, emu: Emulator) -> None:
    store, faults, stats, dispatcher = emu.store, emu.faults, emu.stats, emu.dispatcher

    @app.before_request
    def loopback_only():
        if request.path.startswith("/_emulator"):
            addr = request.remote_addr or "127.0.0.1"
            if not addr.startswith(LOOPBACK) and addr != "localhost":
                raise ApiError(403, "forbidden", "the emulator admin API is loopback only")

    @app.get("/_emulator/health")
    def health():
        return plain({"ok": True, "games": sorted(store.games)})

    @app.get("/_emulator/faults")
    def get_faults():
        return plain({"rules": faults.describe()})

    @app.route("/_emulator/faults", methods=["PUT", "POST"])
    def put_faults():
        body = request.get_json(force=True, silent=True)
        return plain({"rules": faults.replace(body)})

    @app.delete("/_emulator/faults")
    def delete_faults():
        faults.clear()
        return plain({"rules": []})

    @app.get("/_emulator/ledger")
    def ledger():
        filters = {k: request.args.get(k) for k in
                   ("game", "player", "playerId", "kind", "sourceRefId", "idempotencyKey",
                    "currencyKey", "itemKey")}
        filters["currencyKey"] = filters["currencyKey"] or request.args.get("currency")
        filters["itemKey"] = filters["itemKey"] or request.args.get("item")
        limit = request.args.get("limit", type=int)
        entries = store.query_ledger(filters, limit)
        return plain({"entries": entries, "count": len(entries)})

    @app.get("/_emulator/players/<game>/<player>")
    def admin_player(game, player):
        return plain(store.admin_player(game, player))

    @app.post("/_emulator/grants/<game>/<grant_id>/claim")
    def claim_grant(game, grant_id):
        data, events = store.claim_grant(game, grant_id)
        dispatcher.emit(game, events)
        return plain(data)

    @app.post("/_emulator/reset")
    def reset():
        emu.reset()
        return plain({"reset": True})

    @app.get("/_emulator/webhooks")
    def webhooks():
        deliveries = dispatcher.deliveries({k: request.args.get(k)
                                            for k in ("type", "gameId", "status")})
        return plain({"deliveries": deliveries, "pending": dispatcher.pending()})

    @app.delete("/_emulator/webhooks")
    def clear_webhooks():
        dispatcher.clear_log()
        return plain({"deliveries": []})

    @app.get("/_emulator/webhooks/config")
    def get_webhook_config():
        return plain(dispatcher.describe())

    @app.put("/_emulator/webhooks/config")
    def put_webhook_config():
        body = json_body()
        url, secret, game = body.get("url"), body.get("secret"), body.get("game")
        if url is not None and not isinstance(url, str):
            raise ApiError(400, "validation_failed", "url must be a string", {"url": "string"})
        if secret is not None and not (isinstance(secret, str) and secret.startswith("whsec_")):
            raise ApiError(400, "validation_failed", "secret must be 'whsec_...'",
                           {"secret": "whsec_..."})
        dispatcher.set_target(game, url or None, secret or None)
        return plain(dispatcher.describe())

    @app.get("/_emulator/games")
    def games():
        return plain({gid: _public_game(g.cfg) for gid, g in store.games.items()})

    @app.put("/_emulator/games/<game>")
    def put_game(game):
        try:
            cfg = store.put_game(game, json_body())
        except config_mod.ConfigError as err:
            raise ApiError(400, "validation_failed", str(err))
        dispatcher.set_target(game, cfg["webhook_url"], cfg["webhook_secret"])
        return plain({"game": game, **_public_game(cfg)})

    @app.get("/_emulator/stats")
    def get_stats():
        return plain(stats.snapshot())

    @app.delete("/_emulator/stats")
    def reset_stats():
        stats.reset()
        return plain(stats.snapshot())
