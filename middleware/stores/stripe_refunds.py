"""A refund the studio asks Stripe for (``ops.refunds``): which payment, on which account, and what the answer does.

Stripe's ``POST /v1/refunds`` takes ``payment_intent`` (or ``charge``), ``amount`` in minor units for a
partial refund, ``reason`` (``duplicate``, ``fraudulent``, ``requested_by_customer``) and ``metadata``; it is
sent with an idempotency key, and on the connected account (``Stripe-Account``) when the order came through
Connect. The answer is a Refund: when it is already in effect (``succeeded``, or ``pending`` under the game's
``refund_on = "pending"``) or already failed, it is recorded exactly as ``refund.*`` / ``charge.refunded``
record it (``stripe_reversals``: key ``refund:<re_id>:taken|failed``), so the store's own event, before or
after, changes nothing more. A ``pending`` refund waits for that event.
"""
from __future__ import annotations

import json

from sqlalchemy import select
from sqlalchemy.orm import Session

from config.catalog import Game
from mappers import stripe as m
from mappers import stripe_reversals as sr
from mappers.canonical import Reversal

from middleware.ledger.models import Fulfilment, InboundEvent, PaymentRef
from middleware.orders.record import Recorded, record_reversal
from middleware.services import Services

REASONS = ("duplicate", "fraudulent", "requested_by_customer")  # Stripe's RefundCreateParams.reason


def payment_of(session: Session, f: Fulfilment) -> str | None:
    """The PaymentIntent that paid the order (else one of its charges), from its ``payment_refs``."""
    refs = list(session.scalars(select(PaymentRef.ref).where(PaymentRef.fulfilment_id == f.id,
                                                             PaymentRef.source == sr.SOURCE)))
    if f.transaction_id.startswith("pi_"):
        refs.insert(0, f.transaction_id)
    return next((r for r in refs if r.startswith("pi_")), None) or next((r for r in refs if r.startswith("ch_")),
                                                                        None)


def account_of(session: Session, f: Fulfilment) -> str | None:
    """The connected account (Stripe Connect) the order's objects live on, or None: the ``account`` of the
    Stripe events behind the order (its lookup names it too, until the lines are fetched)."""
    lookup = f.lookup or ""
    if lookup.startswith(m.LOOKUP_CHECKOUT + "@"):
        return lookup.split("@", 1)[1]
    bodies = session.scalars(select(InboundEvent.raw_body).where(InboundEvent.fulfilment_id == f.id,
                                                                 InboundEvent.source == sr.SOURCE)
                             .order_by(InboundEvent.id).limit(5))
    for raw in bodies:
        try:
            account = json.loads(raw).get("account")
        except (ValueError, UnicodeDecodeError, AttributeError):
            continue
        if isinstance(account, str) and account.startswith("acct_"):
            return account
    return None


def ask(svc: Services, game: Game, order: dict, amount: int | None, reason: str | None,
        idempotency_key: str) -> dict:
    """Ask Stripe to refund ``order`` (``payment``, ``account``, ``livemode``, ``id``, ``audit``); the Refund.
    Raises ``StoreError`` (transient: not known to be made — the same key asks again safely)."""
    payment = order["payment"]
    params: dict = {"payment_intent" if payment.startswith("pi_") else "charge": payment,
                    "metadata": {"kraty_bridge_order": order["id"], "kraty_bridge_audit": str(order["audit"])}}
    if amount is not None:
        params["amount"] = amount
    if reason is not None:
        params["reason"] = reason
    return svc.stripe_api.create_refund(game.stripe.key_for(order["livemode"]), params, idempotency_key,
                                        order["account"])


def confirm(svc: Services, game: Game, refund: dict, payment: str, actor: str, audit_id: int) -> Recorded | None:
    """Record what the Refund's status calls for through the normal reversal path (None: not in effect yet)."""
    loaded = sr.refund_object(refund)
    notice: Reversal | None = sr.refund_notice(loaded, payment, None, f"ops-audit-{audit_id}", game.stripe.refund_on)
    if notice is None:
        return None
    return record_reversal(svc, notice, game.namespace, actor)
