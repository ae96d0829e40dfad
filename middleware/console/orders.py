"""Console: one order (rows, timeline, the events behind it, sink deliveries) and its action forms."""
from __future__ import annotations

import uuid

from flask import flash, redirect, render_template, request, url_for

from middleware import ops
from middleware.ledger import repository as repo
from middleware.services import services

from middleware.console.blueprint import actor, bp

ACTION_LABELS = {ops.RETRY: "Retry", ops.REVOKE: "Revoke", ops.ATTACH_PLAYER: "Attach a player",
                 ops.MAKE_GOOD: "Make good", ops.RESOLVE: "Mark resolved"}
ACTION_HELP = {
    ops.RETRY: "Grant the failed rows again (or take back again what Kraty refused to take back).",
    ops.REVOKE: "Take back everything this order granted.",
    ops.ATTACH_PLAYER: "The store named no player: give the order its Kraty player and fulfil it.",
    ops.MAKE_GOOD: "Grant something extra in Kraty to the order's player (noted on the order).",
    ops.RESOLVE: "Close the failed order as RESOLVED: nothing more is granted or taken back.",
}
CONFIRM = {ops.REVOKE: "Take back everything this order granted?",
           ops.MAKE_GOOD: "Grant these contents in Kraty now?",
           ops.RESOLVE: "Close this order without granting anything more?"}
CONTENT_KINDS = {"currency": ("currencyKey", "amount"), "item": ("itemKey", "quantity")}


def available_actions(fulfilment_id: str) -> list[str]:
    """The actions the signed-in key may do on the order in its current state (the rules of ``ops``)."""
    me = actor()
    allowed = []
    with services().session() as db:
        f = repo.load(db, fulfilment_id)
        for action, role in ops.ACTION_ROLES.items():
            if not me.may(role):
                continue
            try:
                ops.check_state(f, action)
            except ops.OpsError:
                continue
            allowed.append(action)
    return allowed


def parse_contents(text: str) -> list[dict]:
    """Make-good lines ``currency KEY AMOUNT`` or ``item KEY QUANTITY``, one a line, as ``ops`` takes them."""
    contents, problems = [], {}
    for n, line in enumerate(line for line in text.splitlines() if line.strip()):
        parts = line.split()
        if len(parts) != 3 or parts[0] not in CONTENT_KINDS or not (parts[2].isascii() and parts[2].isdigit()):
            problems[str(n)] = ["write `currency KEY AMOUNT` or `item KEY QUANTITY`"]
            continue
        key, count = CONTENT_KINDS[parts[0]]
        contents.append({key: parts[1], count: int(parts[2])})
    if problems:
        raise ops.OpsError(422, "validation_failed", "The contents do not read: one grant a line, "
                                                     "`currency gems 100` or `item sword 1`.",
                           {"fields": {"contents": problems}})
    return contents


def render_order(fulfilment_id: str, status: int = 200, error: ops.OpsError | None = None, form: dict | None = None):
    me = actor()
    with services().session() as db:
        order = ops.fulfilment_detail(db, me, fulfilment_id)
        audit, _ = ops.list_audit(db, me, ops.AuditQuery(target_type="fulfilment", target_id=order["id"]), 50)
    return render_template("console/order.html", order=order, audit=audit, actions=available_actions(order["id"]),
                           labels=ACTION_LABELS, help=ACTION_HELP, confirm=CONFIRM, roles=ops.ACTION_ROLES,
                           error=error, form=form or {}, idempotency_key=f"console-{uuid.uuid4().hex}"), status


@bp.route("/orders/<fulfilment_id>", methods=["GET"])
def order(fulfilment_id):
    return render_order(fulfilment_id)


@bp.route("/orders/<fulfilment_id>/actions/<action>", methods=["POST"])
def act(fulfilment_id, action):
    """Do an action through ``ops.perform`` (audited as ``console:<key name>``). Problems are shown on the
    order's page with their status (403 role, 409 state, 422 reason...), and nothing is changed."""
    form = request.form
    try:
        if action not in ops.ACTION_ROLES:
            raise ops.OpsError(404, "not_found", f"No action {action}.")
        contents = parse_contents(form.get("contents", "")) if action == ops.MAKE_GOOD else None
        done = ops.perform(services(), actor(), fulfilment_id, action, form.get("reason"),
                           idempotency_key=form.get("idempotency_key") or None,
                           player_id=(form.get("player_id") or "").strip() if action == ops.ATTACH_PLAYER else None,
                           contents=contents)
    except ops.OpsError as exc:
        if exc.code == "idempotency_key_reused":
            exc = ops.OpsError(exc.status, exc.code, "This form was already sent once, with other values: reload "
                                                     "the page and fill it in again.", exc.details)
        if exc.status == 404 and exc.code == "not_found" and action in ops.ACTION_ROLES:
            raise  # no such order: the error page
        return render_order(fulfilment_id, exc.status, exc, {"action": action, **form.to_dict()})
    replayed = " (this form was already sent: its first answer)" if done.get("replayed") else ""
    flash(f"{ACTION_LABELS[action]} done{replayed}: the order is {done['state']} now (audit entry "
          f"{done['auditId']}).", "ok")
    return redirect(url_for("console.order", fulfilment_id=fulfilment_id), 303)
