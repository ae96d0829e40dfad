"""Console: refund an order through its store (``ops.refund``, admin), and why an App Store order cannot be."""
from __future__ import annotations

from flask import flash, redirect, request, url_for

from middleware import ops
from middleware.console.blueprint import actor, bp
from middleware.console.orders import render_order
from middleware.services import services

STORE_NAMES = {"stripe": "Stripe", "google_play": "Google Play", "app_store": "the App Store"}


def refund_panel(order: dict) -> dict:
    """What the order page's refund section shows: why not (App Store, storefront) with Apple's consumption
    requests, or the form; and the refunds already asked (the order's history notes)."""
    history = order.get("history") or []
    return {"store": STORE_NAMES.get(order["source"], order["source"]), "refusal": ops.store_refusal(order["source"]),
            "consumption": [h for h in history if (h.get("detail") or {}).get("event") == "consumption_request"],
            "asked": [h for h in history if (h.get("detail") or {}).get("action") == ops.REFUND],
            "reasons": ops.STRIPE_REFUND_REASONS}


@bp.app_context_processor
def _refund_helpers():
    return {"refund_panel": refund_panel}


def _amount(text: str | None) -> int | None:
    text = (text or "").strip()
    if not text:
        return None
    if not (text.isascii() and text.isdigit()):
        raise ops.OpsError(422, "validation_failed", "The amount does not read: whole cents, e.g. 250 for 2.50.",
                           {"fields": {"amount": ["a positive whole number of cents, or empty for all of it"]}})
    return int(text)


def _revoke(form) -> bool:
    """The Google form's checkbox (absent when unchecked); other forms do not offer it: true."""
    return form.get("revoke") == "yes" if form.get("revoke_offered") == "yes" else True


@bp.route("/orders/<fulfilment_id>/refund", methods=["POST"])
def refund(fulfilment_id):
    """Refund through ``ops.refund`` (audited as ``console:<key name>``); problems are shown on the order's page
    with their status, and nothing is changed."""
    form = request.form
    try:
        done = ops.refund(services(), actor(), fulfilment_id, form.get("reason"), amount=_amount(form.get("amount")),
                          stripe_reason=form.get("stripe_reason") or None, revoke=_revoke(form),
                          idempotency_key=form.get("idempotency_key") or None)
    except ops.OpsError as exc:
        if exc.status == 404 and exc.code == "not_found":
            raise
        return render_order(fulfilment_id, exc.status, exc, {"action": ops.REFUND, **form.to_dict()})
    asked = done["refund"]
    replayed = " (this form was already sent: its first answer)" if done.get("replayed") else ""
    what = f"refund {asked['id']}" if asked.get("id") else f"refund of {asked['payment']}"
    then = {"succeeded": "the goods are taken back", "pending": "the goods are taken back when Stripe confirms it",
            "requested": "the goods are taken back when Google reports the voided purchase"
            if asked.get("revoke") else "nothing is taken back (without revoking)"}.get(asked["status"], "")
    flash(f"Refund asked{replayed}: {what} is {asked['status']}{'; ' + then if then else ''}. The order is "
          f"{done['state']} now (audit entry {done['auditId']}).", "ok")
    return redirect(url_for("console.order", fulfilment_id=fulfilment_id), 303)
