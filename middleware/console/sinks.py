"""Console: the sinks, their dead letters, replay (one, or everything since a time) and enable.

Replays go through ``middleware.sinks.replay`` and enabling through ``enable_sink``, as ``/v1/sinks`` and
``flask sinks`` do; each is audited (``sink.replay``, ``sink.replay_since``, ``sink.enable``) with the actor
``console:<key name>``.
"""
from __future__ import annotations

from datetime import UTC, datetime

from flask import flash, g, redirect, render_template, request, url_for

from middleware import ops
from middleware.ledger.models import utcnow
from middleware.services import services
from middleware.sinks.replay import UnknownTarget, audit, overview, replay
from middleware.sinks.states import ReplayError, enable_sink

from middleware.console.blueprint import ConsoleError, actor, bp
from middleware.console.queries import dead_letters

DEAD_LETTERS = 50


def _overview():
    with services().session() as db:
        sinks = overview(db, services().sinks, actor().namespaces)
        for sink in sinks:
            sink["deadLetters"] = dead_letters(db, actor(), sink["name"], DEAD_LETTERS)
    return sinks


@bp.route("/sinks", methods=["GET"])
def sinks_page():
    return render_template("console/sinks.html", sinks=_overview())


def _checked(name: str) -> str:
    """The action's reason, once the key may act (operator) on a configured sink; else a ConsoleError."""
    me = actor()
    if not me.may("operator"):
        raise ConsoleError(403, f"Replaying and enabling sinks need the operator role; {me.name} has {me.role}.",
                           code="forbidden")
    if services().sinks.get(name) is None:
        raise ConsoleError(404, f"No sink {name} is configured.", code="not_found")
    reason = (request.form.get("reason") or "").strip()
    if not reason or len(reason) > ops.MAX_REASON:
        raise ConsoleError(422, "Say why (1-500 characters): it is kept in the audit log.",
                           {"fields": {"reason": ["required: why (recorded in the audit log)"]}},
                           code="validation_failed")
    return reason


def _audit(action: str, target_type: str, target_id: str, reason: str, after: dict) -> None:
    me = actor()
    audit(services(), me.name, me.role, action, target_type, target_id, reason, after, g.get("request_id"))


def _replayed(**target) -> dict:
    try:
        ids = replay(services(), namespaces=actor().namespaces, **target)
    except UnknownTarget as exc:
        raise ConsoleError(404, str(exc), code="not_found") from None
    except ReplayError as exc:
        raise ConsoleError(409, f"Cannot replay: {exc}", code="cannot_replay") from None
    return {"replayed": len(ids), "deliveryIds": ids}


@bp.route("/sinks/<name>/deliveries/<delivery_id>/replay", methods=["POST"])
def replay_one(name, delivery_id):
    reason = _checked(name)
    result = _replayed(delivery_id=delivery_id, sink=name)
    _audit("sink.replay", "delivery", delivery_id, reason, result)
    flash(f"Delivery {delivery_id} to {name} will be sent again.", "ok")
    return redirect(url_for("console.sinks_page"), 303)


def _since(raw: str) -> datetime:
    """``2026-11-21T10:00`` (the form's datetime-local, read as UTC) or ISO 8601 with a timezone."""
    try:
        since = datetime.fromisoformat(raw.strip())
        since = (since.replace(tzinfo=UTC) if since.tzinfo is None else since).astimezone(UTC)
    except (ValueError, OverflowError):  # not a time; a time UTC cannot hold (year 1 at +14:00)
        raise ConsoleError(422, "Since: a date and time such as 2026-11-21T10:00 (UTC).",
                           {"fields": {"since": ["a date and time"]}}, code="validation_failed") from None
    if since > utcnow():
        raise ConsoleError(422, "Since is in the future.", {"fields": {"since": ["is in the future"]}},
                           code="validation_failed")
    return since


@bp.route("/sinks/<name>/replay", methods=["POST"])
def replay_since(name):
    reason = _checked(name)
    since = _since(request.form.get("since") or "")
    result = _replayed(sink=name, since=since)
    _audit("sink.replay_since", "sink", name, reason, {**result, "since": since.isoformat()})
    flash(f"{result['replayed']} dead-lettered or disabled deliveries to {name} since {ops.iso(since)} will be "
          "sent again.", "ok")
    return redirect(url_for("console.sinks_page"), 303)


@bp.route("/sinks/<name>/enable", methods=["POST"])
def enable(name):
    reason = _checked(name)
    if actor().namespaces is not None:
        raise ConsoleError(403, f"Sink {name} serves every game; {actor().name} is limited to some games.",
                           code="forbidden")
    with services().session() as db:
        changed = enable_sink(db, name)
        db.commit()
    if not changed:
        raise ConsoleError(409, f"Sink {name} is not disabled.", {"state": "enabled"}, code="invalid_state")
    _audit("sink.enable", "sink", name, reason, {"enabled": True})
    flash(f"Sink {name} is enabled; replay its stopped deliveries to send them.", "ok")
    return redirect(url_for("console.sinks_page"), 303)
