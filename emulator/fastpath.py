"""A plain-WSGI fast path for the hot calls (credit, debit, grant, revoke).

Benchmarks push thousands of these per second; Flask's per-request machinery costs about as
much as the operation itself, so they are answered here with the very same validation, store
calls and answers as the Flask views in routes.py (which still serve them when the fast path
does not apply, e.g. a chunked body). Everything else falls through to Flask.
"""
from __future__ import annotations

import json
import logging
import re

from emulator.model import ApiError
from emulator.routes import authenticate_key, check_player_id, error_body, validate_change

CHANGE_RE = re.compile(r"^/server/v1/players/([^/]+)/(wallet|inventory)/([^/]+)/"
                       r"(credit|debit|grant|revoke)$")
BOOK_OPS = {"wallet": ("credit", "debit"), "inventory": ("grant", "revoke")}
ROUTES = {"wallet": "POST /server/v1/players/<player>/wallet/<currency>/<any(credit, debit):op>",
          "inventory": "POST /server/v1/players/<player>/inventory/<item>/<any(grant, revoke):op>"}
JSON_HEADERS = ("Content-Type", "application/json")
REASONS = {200: "OK", 400: "BAD REQUEST", 401: "UNAUTHORIZED", 403: "FORBIDDEN",
           404: "NOT FOUND", 409: "CONFLICT", 500: "INTERNAL SERVER ERROR"}


def _text(raw: str) -> str:
    """PATH_INFO is latin-1 per WSGI; the real text is UTF-8 (as Flask decodes it)."""
    try:
        return raw.encode("latin-1").decode("utf-8")
    except UnicodeError:
        return raw.encode("latin-1").decode("utf-8", "replace")


class FastPath:
    def __init__(self, app, emu):
        self.app, self.store, self.dispatcher, self.stats = app, emu.store, emu.dispatcher, emu.stats

    def __call__(self, environ, start_response):
        if environ.get("REQUEST_METHOD") == "POST" and environ.get("CONTENT_LENGTH"):
            m = CHANGE_RE.match(environ.get("PATH_INFO", ""))
            if m is not None and m.group(4) in BOOK_OPS[m.group(2)]:
                return self._change(m, environ, start_response)
        return self.app(environ, start_response)

    def _change(self, m, environ, start_response):
        player, book, key, op = m.groups()
        stats = self.stats
        with stats.lock:
            stats.handled += 1
            stats.by_route[ROUTES[book]] += 1
        try:
            game = authenticate_key(self.store, environ.get("HTTP_AUTHORIZATION", ""))
            player, key = _text(player), _text(key)
            check_player_id(player)
            body = self._json(environ)
            validate_change(body, "amount" if book == "wallet" else "quantity")
            data, events = self.store.apply(game, op, player, key, body)
            if events:
                self.dispatcher.emit(game, events)
            status, payload = 200, json.dumps({"data": data}, separators=(",", ":")).encode()
        except ApiError as err:
            status, payload = err.status, error_body(err)
        except Exception:  # same as the Flask app's catch-all: a Kraty 500, no stack trace
            logging.getLogger("emulator").exception("emulator error")
            status, payload = 500, error_body(ApiError(500, "internal_error", "internal error"))
        start_response(f"{status} {REASONS.get(status, 'ERROR')}",
                       [JSON_HEADERS, ("Content-Length", str(len(payload)))])
        return [payload]

    @staticmethod
    def _json(environ) -> dict:
        try:
            length = int(environ["CONTENT_LENGTH"])
        except ValueError:
            length = -1
        if not 0 <= length <= 1_000_000:
            raise ApiError(400, "validation_failed", "bad Content-Length", {"body": "length"})
        raw = environ["wsgi.input"].read(length)
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise ApiError(400, "validation_failed", "body must be a JSON object",
                           {"body": "object"})
        return body
