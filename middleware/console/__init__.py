"""The ops web console at ``/console``: server-rendered pages over ``middleware.ops`` (see docs/console.md).

Sign in with an API key (viewer, operator or admin); the session is a signed cookie (``KB_SECRET_KEY``) holding
the key's id and a fragment of its hash, never the key. Every POST carries the session's CSRF token. The pages
only call ``middleware.ops`` and ``middleware.sinks.replay``, as the ops API and the CLI do.
"""
from __future__ import annotations

from datetime import timedelta

from flask import Flask, has_request_context, request
from flask.sessions import SecureCookieSessionInterface

SESSION_HOURS = 12


class ConsoleSessionInterface(SecureCookieSessionInterface):
    """Flask's signed-cookie sessions, with the Secure flag also whenever the request came over https."""

    def get_cookie_secure(self, app: Flask) -> bool:
        return bool(super().get_cookie_secure(app) or (has_request_context() and request.is_secure))


def register(app: Flask) -> None:
    """Mount the console (its pages answer 503 until ``KB_SECRET_KEY`` is set)."""
    from middleware.console import audit, home, notes, orders, pages, sinks  # noqa: F401  (their routes)
    from middleware.console.blueprint import bp
    settings = app.extensions["kraty_bridge"].settings
    if settings.secret_keys:  # the first signs; the others (keys being rotated out) still verify
        app.secret_key = settings.secret_keys[0]
        app.config["SECRET_KEY_FALLBACKS"] = list(settings.secret_keys[1:])
    app.config.update(SESSION_COOKIE_NAME="kb_console", SESSION_COOKIE_PATH="/console",
                      SESSION_COOKIE_HTTPONLY=True, SESSION_COOKIE_SAMESITE="Lax",
                      PERMANENT_SESSION_LIFETIME=timedelta(hours=SESSION_HOURS))
    app.session_interface = ConsoleSessionInterface()
    app.register_blueprint(bp)
