"""Console pages: sign in and out, search, the failed-and-stuck queue, a player."""
from __future__ import annotations

import logging
import secrets
from datetime import timedelta

from flask import g, redirect, render_template, request, session, url_for

from mappers.accelbyte import is_clean_id
from middleware.ledger import api_keys
from middleware import ops
from middleware.ledger import states
from middleware.ledger.models import utcnow
from middleware.services import services

from middleware.console import home
from middleware.ops import notes
from middleware.console import sessions
from middleware.console.blueprint import ConsoleError, actor, bp, start_session
from middleware.console.queries import stuck_orders

log = logging.getLogger(__name__)
MAX_KEY = 256
QUEUE_ROWS = 100
STUCK_AFTER = {"5": timedelta(minutes=5), "15": timedelta(minutes=15), "60": timedelta(hours=1),
               "1440": timedelta(days=1)}   # minutes -> threshold offered on the queue page
STUCK_LABELS = {"5": "5 minutes", "15": "15 minutes", "60": "1 hour", "1440": "1 day"}


def safe_next(target: str | None) -> str | None:
    """Where to go after signing in: only a console path of this site (never another host)."""
    if target and (target == "/console" or target.startswith("/console/")) and "\\" not in target:
        return target
    return None


@bp.route("/sign-in", methods=["GET", "POST"])
def sign_in():
    notice = session.pop("notice", None) or g.get("console_notice")
    next_ = safe_next(request.values.get("next"))
    if request.method == "GET":
        if g.console_key is not None:
            return redirect(next_ or url_for("console.search"), 303)
        return render_template("console/sign_in.html", notice=notice, next=next_)
    given = request.form.get("key", "").strip()
    row, problem = None, None
    if given and len(given) <= MAX_KEY:
        with services().session() as db:
            row, problem = api_keys.lookup(db, given)
            if row is not None:
                api_keys.note_use(db, row)
                db.expunge(row)
    if row is None:
        log.warning("console sign-in refused: %s", problem or "no key")
        error = ("Unknown or revoked API key." if problem is None or problem.startswith("unknown")
                 else f"{problem[0].upper()}{problem[1:]}: ask for a new one.")
        return render_template("console/sign_in.html", error=error, next=next_), 401
    if not api_keys.allows(row.role, "viewer"):
        log.warning("console sign-in refused: key %s has role %s", row.name, row.role)
        return render_template("console/sign_in.html", next=next_,
                               error=f"The key {row.name} has the {row.role} role; the console needs viewer, "
                                     "operator or admin."), 403
    start_session(kind="key", actor=f"console:{row.name}", role=row.role, namespaces=row.namespaces,
                  api_key_id=row.id)
    log.info("console sign-in: key %s (%s)", row.name, row.role)
    return redirect(next_ or url_for("console.search"), 303)


@bp.route("/sign-out", methods=["POST"])
def sign_out():
    with services().session() as db:
        sessions.end(db, session.get("sid"))   # the old cookie finds nothing from now on
    session.clear()
    session["notice"] = "Signed out."
    return redirect(url_for("console.sign_in"), 303)


def visible_games() -> list[str]:
    return [ns for ns in services().catalog.games if actor().sees(ns)]


def _namespace_arg() -> str | None:
    namespace = request.args.get("namespace") or None
    if namespace is not None and namespace not in visible_games():
        raise ConsoleError(422, f"Unknown game {namespace!r}.", {"fields": {"namespace": ["not a game you see"]}})
    return namespace


@bp.route("/", methods=["GET"])
def search():
    """The home page: what needs a person, and search by anything a customer or a store quotes (home.py)."""
    return home.search_page()


@bp.route("/queue", methods=["GET"])
def queue():
    """Orders that need a person: FULFILL_FAILED, REVOKE_FAILED, and active ones whose state has not moved
    for longer than the chosen threshold."""
    namespace = _namespace_arg()
    older = request.args.get("older", "15")
    if older not in STUCK_AFTER:
        raise ConsoleError(422, "Unknown threshold.", {"fields": {"older": [f"one of {', '.join(STUCK_AFTER)}"]}})
    me = actor()
    lists = {}
    with services().session() as db:
        for state in (states.FULFILL_FAILED, states.REVOKE_FAILED):
            rows, more = ops.list_fulfilments(db, me, ops.FulfilmentQuery(namespace=namespace, state=state),
                                              QUEUE_ROWS)
            lists[state] = {"rows": rows, "more": more is not None}
        stuck = stuck_orders(db, me, utcnow() - STUCK_AFTER[older], namespace, QUEUE_ROWS + 1)
    lists["stuck"] = {"rows": stuck[:QUEUE_ROWS], "more": len(stuck) > QUEUE_ROWS}
    return render_template("console/queue.html", lists=lists, older=older, choices=STUCK_LABELS,
                           namespace=namespace, games=visible_games(), limit=QUEUE_ROWS)


@bp.route("/players/<namespace>/<path:player_id>", methods=["GET"])
def player(namespace, player_id):
    """A player's orders with totals, beside Kraty's profile (or why Kraty could not say)."""
    if not is_clean_id(player_id):
        raise ConsoleError(422, "A player id is 1-128 printable characters without spaces.",
                           {"fields": {"playerId": ["1-128 printable characters without spaces"]}})
    view = ops.player_view(services(), actor(), namespace, player_id)
    with services().session() as db:
        player_notes = notes.notes_on(db, actor(), "player", notes.player_target(namespace, player_id))
    return render_template("console/player.html", view=view, notes=player_notes,
                           idempotency_key=f"console-{secrets.token_hex(16)}-note")
