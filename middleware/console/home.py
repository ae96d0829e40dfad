"""Console home: "what needs me" (counts, each a link to its list) above the search by anything a customer or a
store quotes, filtered by game, state and time; the flagged orders' and the untraceable refunds' lists."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

from flask import render_template, request

from middleware import ops
from middleware.console.blueprint import ConsoleError, actor, bp
from middleware.ledger import states
from middleware.ledger.models import utcnow
from middleware.ops import needs
from middleware.ops import search as ops_search
from middleware.orders.untraced import untraced_reversals
from middleware.services import services

SEARCH_ROWS = 50
FLAGGED_ROWS = 100
STUCK_MINUTES = 15   # the home page's "stuck": unchanged for longer than this (the queue's default)


def visible_games() -> list[str]:
    return [ns for ns in services().catalog.games if actor().sees(ns)]


def _namespace() -> str | None:
    namespace = request.args.get("namespace") or None
    if namespace is not None and namespace not in visible_games():
        raise ConsoleError(422, f"Unknown game {namespace!r}.", {"fields": {"namespace": ["not a game you see"]}})
    return namespace


def _day(name: str, end: bool = False) -> datetime | None:
    """A YYYY-MM-DD field as a UTC time: the day's start (``end``: the next day's, for an inclusive end day)."""
    raw = (request.args.get(name) or "").strip()
    if not raw:
        return None
    try:
        day = datetime.strptime(raw, "%Y-%m-%d").replace(tzinfo=UTC)
    except ValueError:
        raise ConsoleError(422, f"{name}: a date is YYYY-MM-DD.", {"fields": {name: ["YYYY-MM-DD"]}}) from None
    return day + timedelta(days=1) if end else day


def _filters() -> dict:
    state = request.args.get("state") or None
    if state is not None and state not in states.STATES:
        raise ConsoleError(422, "Unknown state.", {"fields": {"state": [f"one of {', '.join(states.STATES)}"]}})
    after, before = _day("from"), _day("to", end=True)
    if after and before and after >= before:
        raise ConsoleError(422, "The range ends before it starts.", {"fields": {"to": ["on or after from"]}})
    return {"namespace": _namespace(), "state": state, "created_after": after, "created_before": before}


def search_page():
    """The home page: the counts, the search form, and what the search found."""
    q = request.args.get("q", "").strip()
    if len(q) > ops_search.MAX_QUERY:
        raise ConsoleError(422, f"The search is too long (at most {ops_search.MAX_QUERY} characters).",
                           {"fields": {"q": [f"1-{ops_search.MAX_QUERY} characters"]}})
    filters = _filters()
    me = actor()
    found = None
    with services().read_session() as db:
        counts = needs.counts(db, me, utcnow() - timedelta(minutes=STUCK_MINUTES),
                              [sink.name for sink in services().sinks])
        if q:
            found = ops_search.search(db, me, ops_search.SearchQuery(q=q, **filters), SEARCH_ROWS)
        elif filters["state"] or filters["created_after"] or filters["created_before"]:
            rows, more = ops.list_fulfilments(db, me, ops.FulfilmentQuery(**filters), SEARCH_ROWS)
            found = {"orders": rows, "more": more is not None, "players": []}
    return render_template("console/search.html", q=q, filters=filters, games=visible_games(), found=found,
                           counts=counts, shown=needs.shown, matches=ops_search.MATCHES, stuck=STUCK_MINUTES,
                           flag_labels=needs.FLAG_LABELS, all_states=states.STATES,
                           day=lambda value: value.strftime("%Y-%m-%d") if value else "",
                           last_day=lambda value: (value - timedelta(days=1)).strftime("%Y-%m-%d") if value else "")


@bp.route("/flagged", methods=["GET"])
def flagged():
    """Orders flagged for review (of one kind: price, partial_refund, other), newest first."""
    kind = request.args.get("kind") or None
    with services().session() as db:
        rows = needs.flagged_orders(db, actor(), kind, FLAGGED_ROWS)
    return render_template("console/flagged.html", rows=rows, kind=kind, labels=needs.FLAG_LABELS,
                           limit=FLAGGED_ROWS)


@bp.route("/untraced", methods=["GET"])
def untraced():
    """Refunds and disputes no order could be found for (every game's: only a key that sees every game)."""
    if actor().namespaces is not None:
        raise ConsoleError(403, "Untraceable refunds name no order, so no game: only a key for every game sees "
                                "them.", code="forbidden")
    with services().session() as db:
        rows = untraced_reversals(db, FLAGGED_ROWS)
    return render_template("console/untraced.html", rows=rows)
