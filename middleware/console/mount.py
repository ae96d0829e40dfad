"""Mounting the console on the app: its session cookie, its secret keys and its blueprint (every page module's
routes)."""
from __future__ import annotations

from datetime import timedelta

from flask import Flask, has_request_context, request
from flask.sessions import SecureCookieSessionInterface

from middleware.console import audit, home, notes, orders, pages, refunds, signin, sinks  # noqa: F401  (their routes)
from middleware.console.blueprint import bp

class ConsoleSessionInterface(SecureCookieSessionInterface):
    """Flask's signed-cookie sessions, with the Secure flag also whenever the request came over https."""

    def get_cookie_secure(self, app: Flask) -> bool:
        return bool(super().get_cookie_secure(app) or (has_request_context() and request.is_secure))


def register(app: Flask) -> None:
    """Mount the console (its pages answer 503 until ``KB_SECRET_KEY`` is set)."""
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
