"""``invoice.paid``: one paid period of a Stripe subscription, granted once (keyed by the invoice id).

Runs in the worker like the other Stripe events (``stripe_events.handle``). The invoice's payment is read
from the event (``payments``, or ``payment_intent``/``charge`` before API version 2025-03-31) or fetched
(``GET /v1/invoice_payments?invoice=``), its charges from the PaymentIntents' ``latest_charge``, so that a
refund or dispute naming any of them finds the order. A trial start grants each product's ``trial_sku``.
"""
from __future__ import annotations

from marshmallow import ValidationError

from config.catalog import Game
from mappers import stripe as m
from mappers import stripe_invoices as mi

from middleware.orders.lines import resolve_line
from middleware.orders.record import record_purchase
from middleware.services import Services
from middleware.stores.errors import StoreError

ACTOR = "stripe"


def trial_lines(game: Game, lines: list[dict]) -> list[dict]:
    """What a trial start grants: each line's product's ``trial_sku`` (lines without one grant nothing)."""
    found = []
    for line in lines:
        product = resolve_line(game, line).product
        if product is not None and product.trial_sku:
            found.append({"itemSku": product.trial_sku, "quantity": line["quantity"]})
    return found


def _with_charges(svc: Services, key: str, account: str | None,
                  paid: list[tuple[str | None, str | None]]) -> list[tuple[str | None, str | None]]:
    """Each PaymentIntent's ``latest_charge`` where the payment named no charge."""
    out = []
    for intent, charge in paid:
        if intent and not charge:
            charge = m.ref_id(svc.stripe_api.payment_intent(key, intent, account).get("latest_charge"))
        out.append((intent, charge))
    return out


def handle_invoice(svc: Services, game: Game, event: m.Event) -> tuple[str, str, str | None]:
    inv = mi.invoice(event.object)
    owner = mi.invoice_namespace(inv)
    if owner is not None and owner != game.namespace:
        return "ignored", f"invoice {inv['id']} is for namespace {owner}", None
    if inv["lines"].get("has_more"):   # the event carries the first page of lines: the rest through the API
        carried = inv["lines"].get("data") or []
        if not carried or not isinstance(carried[-1].get("id"), str):
            return "failed", f"invoice {inv['id']} has more lines but its event carries none to page from", None
        try:
            more = svc.stripe_api.invoice_lines(game.stripe.key_for(event.livemode), inv["id"], carried[-1]["id"],
                                                event.account)
            inv = mi.with_lines(inv, more)
        except StoreError as exc:
            if exc.transient:
                raise  # the event stays pending: its job is retried
            return "failed", f"could not read the lines of invoice {inv['id']} from Stripe: {exc}", None
        except ValidationError as exc:
            return "failed", f"invoice {inv['id']}: a line fetched from Stripe is not one we can read: " \
                             f"{exc.messages}", None
    trial, lines = mi.is_trial(inv), mi.store_lines(inv)
    if trial:
        lines = trial_lines(game, lines)
    if not lines:
        what = "charged nothing (a trial start) and the catalog declares no trial_sku" if trial else \
            "has only credit lines"
        return "processed", f"invoice {inv['id']} {what}: nothing granted", None
    paid: list = []
    if not trial:
        key = game.stripe.key_for(event.livemode)
        try:
            paid = mi.payments(inv)
            if paid is None:
                paid = mi.paid_pairs(svc.stripe_api.invoice_payments(key, inv["id"], event.account))
            paid = _with_charges(svc, key, event.account, paid)
        except StoreError as exc:
            if exc.transient:
                raise  # the event stays pending: its job is retried
            return "failed", f"could not read the payments of invoice {inv['id']} from Stripe: {exc}", None
    purchase = mi.purchase_from_invoice(inv, event, game.stripe.player_metadata_key, lines, paid, trial)
    return record_purchase(svc, game, purchase, ACTOR).as_event_result()
