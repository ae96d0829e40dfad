"""Console: the audit log (``ops.list_audit``) filtered by actor, action, target, game and time, newest first,
one page at a time (``before_id``: the page after the entry with that id)."""
from __future__ import annotations

from flask import render_template, request

from middleware import ops
from middleware.console.blueprint import ConsoleError, actor, bp
from middleware.console.home import _day, _namespace, visible_games
from middleware.services import services

AUDIT_ROWS = 50
TARGET_TYPES = ("fulfilment", "delivery", "sink", "player")
FIELDS = {"actor": 128, "action": 64, "target_id": 255}


def _text(name: str) -> str | None:
    value = (request.args.get(name) or "").strip() or None
    if value is not None and len(value) > FIELDS[name]:
        raise ConsoleError(422, f"{name}: at most {FIELDS[name]} characters.",
                           {"fields": {name: [f"1-{FIELDS[name]} characters"]}})
    return value


@bp.route("/audit", methods=["GET"])
def audit_page():
    target_type = request.args.get("target_type") or None
    if target_type is not None and target_type not in TARGET_TYPES:
        raise ConsoleError(422, "Unknown target.", {"fields": {"target_type": [f"one of {', '.join(TARGET_TYPES)}"]}})
    raw_after = request.args.get("before_id") or None
    if raw_after is not None and not (raw_after.isascii() and raw_after.isdigit() and len(raw_after) <= 18):
        raise ConsoleError(422, "Unknown page.", {"fields": {"before_id": ["an audit entry id"]}})
    after, before = _day("from"), _day("to", end=True)
    if after and before and after >= before:
        raise ConsoleError(422, "The range ends before it starts.", {"fields": {"to": ["on or after from"]}})
    query = ops.AuditQuery(target_type=target_type, target_id=_text("target_id"), actor=_text("actor"),
                           action=_text("action"), namespace=_namespace(), after=after, before=before)
    with services().session() as db:
        rows, following = ops.list_audit(db, actor(), query, AUDIT_ROWS, int(raw_after) if raw_after else None)
    args = {k: v for k, v in request.args.items() if k != "before_id" and v}
    return render_template("console/audit.html", rows=rows, following=following, args=args,
                           games=visible_games(), targets=TARGET_TYPES, actions=sorted(ops.ACTION_ROLES) + ["note"])
