"""The ops web console at ``/console``: server-rendered pages over ``middleware.ops`` (see docs/console.md).

Sign in with an API key (viewer, operator or admin) or with OpenID Connect (``console.signin``); the session is
kept on the server (``console.sessions``) and the signed cookie (``KB_SECRET_KEY``) holds only its random token. Every POST carries the session's CSRF token. The pages
only call ``middleware.ops`` and ``middleware.sinks.replay``, as the ops API and the CLI do.
"""
from __future__ import annotations

from datetime import timedelta

from flask import Flask, has_request_context, request
from flask.sessions import SecureCookieSessionInterface



class ConsoleSessionInterface(SecureCookieSessionInterface):
    """Flask's signed-cookie sessions, with the Secure flag also whenever the request came over https."""

    def get_cookie_secure(self, app: Flask) -> bool:
        return bool(super().get_cookie_secure(app) or (has_request_context() and request.is_secure))


def register(app: Flask) -> None:
    """Mount the console (its pages answer 503 until ``KB_SECRET_KEY`` is set)."""
    from middleware.console import orders, pages, signin, sinks  # noqa: F401  (their routes)
    from middleware.console.blueprint import bp
    settings = app.extensions["kraty_bridge"].settings
    if settings.secret_keys:  # the first signs; the others (keys being rotated out) still verify
        app.secret_key = settings.secret_keys[0]
        app.config["SECRET_KEY_FALLBACKS"] = list(settings.secret_keys[1:])
    app.config.update(SESSION_COOKIE_NAME="kb_console", SESSION_COOKIE_PATH="/console",
                      SESSION_COOKIE_HTTPONLY=True, SESSION_COOKIE_SAMESITE="Lax",
                      PERMANENT_SESSION_LIFETIME=timedelta(hours=settings.console_session_hours))
    app.session_interface = ConsoleSessionInterface()
    signin.configure(app)
    app.register_blueprint(bp)
