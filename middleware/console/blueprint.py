"""The console's blueprint: who is signed in, CSRF on every POST, security headers, error pages."""
from __future__ import annotations

import hmac
import json
import secrets
from datetime import timedelta

from flask import Blueprint, g, redirect, render_template, request, session, url_for
from markupsafe import Markup, escape
from werkzeug.exceptions import HTTPException

from middleware import ops
from middleware.console import sessions
from middleware.ledger import api_keys
from middleware.ledger.storable import MESSAGE, unstorable
from middleware.services import services

bp = Blueprint("console", __name__, url_prefix="/console", template_folder="templates", static_folder="static")

PUBLIC = {"console.sign_in", "console.static", "console.sso_start", "console.sso_callback"}   # reachable without signing in
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; form-action 'self'; "
       "frame-ancestors 'none'; base-uri 'none'")


class ConsoleError(Exception):
    """A page answering an error: status, message, and optional field problems (``{"fields": {...}}``)."""

    def __init__(self, status: int, message: str, details: dict | None = None, code: str | None = None):
        super().__init__(message)
        self.status, self.message, self.details, self.code = status, message, details, code


def actor() -> ops.Actor:
    return g.console_actor


def csrf_token() -> str:
    token = session.get("csrf")
    if not token:
        token = session["csrf"] = secrets.token_urlsafe(32)
    return token


def csrf_field() -> Markup:
    return Markup(f'<input type="hidden" name="csrf_token" value="{escape(csrf_token())}">')


def _csrf_ok() -> bool:
    sent, kept = request.form.get("csrf_token", ""), session.get("csrf", "")
    return bool(sent and kept) and hmac.compare_digest(sent.encode(), kept.encode())


def _signed_in() -> tuple[sessions.SignedIn | None, str | None]:
    """The session's person or key, or None and why the session ended (None: there was none)."""
    token = session.get("sid")
    if not token:
        return None, None
    settings = services().settings
    with services().session() as db:
        return sessions.resume(db, token, timedelta(minutes=settings.console_idle_minutes))


def start_session(**who) -> None:
    """Sign in: a new server-side session (and a new cookie session: a new CSRF token, nothing carried over)."""
    settings = services().settings
    with services().session() as db:
        sessions.end(db, session.get("sid"))   # signing in again replaces the session the browser had
        token = sessions.start(db, timedelta(hours=settings.console_session_hours), **who)
    session.clear()
    session.update(sid=token, csrf=secrets.token_urlsafe(32))


@bp.before_request
def _before():
    if not services().settings.secret_key:
        raise ConsoleError(503, "The console is off: set KB_SECRET_KEY (the same value in every web process; "
                                "see docs/console.md) and restart.", code="console_off")
    if request.endpoint == "console.static":
        return None
    if request.method == "POST" and not _csrf_ok():
        raise ConsoleError(400, "The form's security token is missing or wrong (a stale page, another site's "
                                "form, or cookies blocked). Nothing was changed: reload the page and try again.",
                           code="csrf_failed")
    sent = [*(request.view_args or {}).values(), *request.args.items(multi=True), *request.form.items(multi=True)]
    if unstorable(sent):
        raise ConsoleError(400, f"The address or the form holds text the ledger cannot store: it {MESSAGE}. "
                                "Nothing was changed.", code="bad_request")
    key, ended = _signed_in()
    if ended:
        session.clear()
        g.console_notice = ended
    g.console_key = key
    g.console_actor = (ops.Actor(key.actor, key.role, key.namespaces, g.get("request_id")) if key else None)
    if key is None and request.endpoint not in PUBLIC:
        if ended:
            session["notice"] = ended
        wanted = request.full_path if request.method == "GET" else None
        return redirect(url_for("console.sign_in", next=wanted) if wanted else url_for("console.sign_in"), 303)
    return None


@bp.after_request
def _headers(response):
    response.headers.setdefault("Content-Security-Policy", CSP)
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "same-origin"
    if request.endpoint != "console.static":
        response.headers["Cache-Control"] = "no-store"
    return response


def error_page(status: int, message: str, details: dict | None = None, code: str | None = None):
    return render_template("console/error.html", status=status, message=message, details=details,
                           code=code), status


@bp.errorhandler(ConsoleError)
def _console_error(exc: ConsoleError):
    return error_page(exc.status, exc.message, exc.details, exc.code)


@bp.errorhandler(ops.OpsError)
def _ops_error(exc: ops.OpsError):
    return error_page(exc.status, exc.message, exc.details, exc.code)


@bp.errorhandler(HTTPException)
def _http_error(exc: HTTPException):
    return error_page(exc.code or 500, exc.description or exc.name)


def _when(value) -> str:
    """``2026-11-21T10:00:00.123456Z`` as ``2026-11-21 10:00:00 UTC``."""
    if not value:
        return "—"
    text = value if isinstance(value, str) else ops.iso(value)
    date, _, rest = text.partition("T")
    return f"{date} {rest[:8]} UTC" if rest else text


def _pretty(value) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True, default=str)


@bp.context_processor
def _helpers():
    return {"csrf_field": csrf_field, "me": g.get("console_key"), "may": _may}


def _may(role: str) -> bool:
    key = g.get("console_key")
    return key is not None and api_keys.allows(key.role, role)


bp.add_app_template_filter(_when, "when")
bp.add_app_template_filter(_pretty, "pretty")
