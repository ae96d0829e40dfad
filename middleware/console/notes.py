"""Console: notes on an order or a player (``ops.notes``: audited as ``console:<key name>``, action ``note``)."""
from __future__ import annotations

from flask import flash, redirect, request, url_for

from middleware.console.blueprint import actor, bp
from middleware.ops import notes
from middleware.services import services


def _note(target_type: str, target_id: str, namespace: str | None = None) -> None:
    done = notes.add_note(services(), actor(), target_type, target_id, request.form.get("note"),
                          namespace=namespace, idempotency_key=request.form.get("idempotency_key") or None)
    replayed = " (this form was already sent: kept once)" if done.get("replayed") else ""
    flash(f"Note added{replayed} (audit entry {done['id']}).", "ok")


@bp.route("/orders/<fulfilment_id>/notes", methods=["POST"])
def order_note(fulfilment_id):
    _note("fulfilment", fulfilment_id)
    return redirect(url_for("console.order", fulfilment_id=fulfilment_id) + "#notes", 303)


@bp.route("/players/<namespace>/<path:player_id>/notes", methods=["POST"])
def player_note(namespace, player_id):
    _note("player", player_id, namespace)
    return redirect(url_for("console.player", namespace=namespace, player_id=player_id) + "#notes", 303)
