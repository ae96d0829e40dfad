"""Stripe refunds and disputes: find the payment they concern, then record each status once.

Tracing. A Refund or Dispute names its ``charge`` and usually its ``payment_intent``. The id the ledger
already knows wins (the PaymentIntent, or a charge the purchase recorded in ``payment_refs``); a
take-back that names only a charge the ledger does not know is looked up through Stripe's API (the
Charge's ``payment_intent``), and the charge is then recorded as another id of that order. If Stripe
cannot tell (the charge is not found), the take-back waits under the charge id until a purchase names
it, and the reconciler flags it for ops after ``KB_UNTRACED_REVERSAL_SECONDS`` (``workers/untraced.py``).

``charge.refunded`` carries the Charge (``amount_refunded`` is cumulative; since API version
2022-11-15 the ``refunds`` list is not embedded): its refunds are listed through the API and each is
recorded as the Refund it is, under the same keys as ``refund.*`` events — so one refund takes effect
once, whichever event came first, and its current status (from the API) is what counts.
"""
from __future__ import annotations

from dataclasses import replace

from config.catalog import Game
from mappers import stripe as m
from mappers import stripe_reversals as sr
from mappers.canonical import Reversal

from middleware.orders import payment_refs
from middleware.orders.record import record_reversal
from middleware.services import Services
from middleware.stores.errors import StoreError

ACTOR = "stripe"


def _known(svc: Services, *refs: str | None) -> str | None:
    """The first of ``refs`` that names an order in the ledger."""
    with svc.session() as session:
        return next((ref for ref in refs if ref and payment_refs.order_of(session, sr.SOURCE, ref)), None)


def trace(svc: Services, game: Game, event: m.Event, charge_id: str | None, payment_intent: str | None,
          charge: dict | None = None) -> tuple[str, int | None, str]:
    """(the payment id to record the take-back under, the charge's amount if known, a note for ops)."""
    total = sr.charge_total(charge)
    known = _known(svc, payment_intent, charge_id)
    if known is not None or payment_intent is not None:
        return known or payment_intent, total, ""
    try:
        charge = svc.stripe_api.charge(game.stripe.key_for(event.livemode), charge_id, event.account)
    except StoreError as exc:
        if exc.transient:
            raise  # the event's job is retried
        return charge_id, total, f"charge {charge_id} could not be traced through Stripe's API ({exc.code})"
    payment_intent = sr.ref_of(charge.get("payment_intent"))
    if payment_intent is None:
        return charge_id, sr.charge_total(charge), f"charge {charge_id} has no PaymentIntent"
    with svc.session() as session:
        fulfilment_id = payment_refs.order_of(session, sr.SOURCE, payment_intent)
        if fulfilment_id is not None:  # remember the charge: the next take-back naming it needs no lookup
            payment_refs.attach(session, sr.SOURCE, [charge_id], fulfilment_id)
            session.commit()
    return payment_intent, sr.charge_total(charge), ""


def _record(svc: Services, game: Game, notice: Reversal, note: str) -> tuple[str, str, str | None]:
    if note:
        notice = replace(notice, detail={**notice.detail, "trace": note})
    outcome, detail, fulfilment_id = record_reversal(svc, notice, game.namespace, ACTOR).as_event_result(notice.key)
    return outcome, f"{detail} ({note})" if note else detail, fulfilment_id


def _refund(svc: Services, game: Game, event: m.Event) -> tuple[str, str, str | None]:
    refund = sr.refund_object(event.object)
    ref, total, note = trace(svc, game, event, refund["charge"], refund["payment_intent"], refund["charge_object"])
    notice = sr.refund_notice(refund, ref, total, event.id, game.stripe.refund_on)
    if notice is None:
        return "processed", f"refund {refund['id']} is {refund['status']}: nothing changes until it succeeds", None
    return _record(svc, game, notice, note)


def _charge_refunded(svc: Services, game: Game, event: m.Event) -> tuple[str, str, str | None]:
    charge = sr.charge_object(event.object)
    refunds = charge["embedded_refunds"]
    if refunds is None:
        try:
            refunds = [sr.refund_object(r) for r in
                       svc.stripe_api.refunds_of(game.stripe.key_for(event.livemode), charge["id"],
                                                 event.account)]
        except StoreError as exc:
            if exc.transient:
                raise
            return "failed", f"could not list the refunds of {charge['id']} through Stripe's API: {exc}", None
    ref, total, note = trace(svc, game, event, charge["id"], charge["payment_intent"], event.object)
    results = []
    for refund in refunds:
        notice = sr.refund_notice(refund, ref, total, event.id, game.stripe.refund_on)
        if notice is not None:
            results.append(_record(svc, game, notice, note))
    if not results:
        return "processed", (f"{charge['id']}: {charge['amount_refunded']} refunded, but Stripe lists no refund "
                             f"in effect yet: each is acted on when its refund.* event or status comes"), None
    fulfilment_id = next((f for _o, _d, f in reversed(results) if f), None)
    return "processed", "; ".join(detail for _o, detail, _f in results), fulfilment_id


def _dispute(svc: Services, game: Game, event: m.Event) -> tuple[str, str, str | None]:
    dispute = sr.dispute_object(event.object)
    ref, total, note = trace(svc, game, event, dispute["charge"], dispute["payment_intent"],
                             dispute["charge_object"])
    notice = sr.dispute_notice(dispute, ref, total, event.id)
    if notice is None:
        return "processed", f"dispute {dispute['id']} is {dispute['status']}: a status we do not act on", None
    return _record(svc, game, notice, note)


def handle(svc: Services, game: Game, event: m.Event) -> tuple[str, str, str | None]:
    """A refund or dispute event (``sr.EVENTS``) -> (outcome, detail, fulfilment id) for its inbound row."""
    if event.type == sr.CHARGE_REFUNDED:
        return _charge_refunded(svc, game, event)
    if event.type in sr.REFUND_EVENTS:
        return _refund(svc, game, event)
    return _dispute(svc, game, event)
