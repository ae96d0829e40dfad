"""Stripe events for tests: built like Stripe's, signed with real HMAC-SHA256 by the tests themselves."""
from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import time
from pathlib import Path

SECRET = "whsec_demo_test_secret"   # config/examples/catalog.toml, game demo
PATH = "/webhooks/stripe/demo"
_ids = itertools.count(1)


def sign(body: bytes, secret: str = SECRET, t: int | None = None, extra: str = "") -> str:
    t = int(time.time()) if t is None else t
    mac = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={t},v1={mac}{extra}"


def event(type_: str, obj: dict, livemode: bool = False, event_id: str | None = None) -> dict:
    return {"id": event_id or f"evt_test_{next(_ids)}_{int(time.time() * 1000)}", "object": "event",
            "api_version": "2025-01-27.acacia", "created": int(time.time()), "livemode": livemode,
            "type": type_, "data": {"object": obj}, "pending_webhooks": 1, "request": {"id": None}}


def body_of(ev: dict) -> bytes:
    return json.dumps(ev).encode()


def post(client, ev: dict | bytes, *, secret: str = SECRET, t: int | None = None, path: str = PATH,
         signature: str | None = None, content_type: str = "application/json; charset=utf-8"):
    body = ev if isinstance(ev, bytes) else body_of(ev)
    headers = {"Stripe-Signature": signature if signature is not None else sign(body, secret, t)}
    return client.post(path, data=body, headers=headers, content_type=content_type)


def completed(session: dict, **kw) -> dict:
    return event("checkout.session.completed", session, **kw)


def charge(pi: str, amount: int, refunded: int, charge_id: str | None = None) -> dict:
    return {"id": charge_id or f"ch_{pi[3:]}", "object": "charge", "payment_intent": pi, "amount": amount,
            "amount_refunded": refunded, "refunded": refunded >= amount, "currency": "usd", "livemode": False}


def dispute(pi: str | None, status: str, amount: int = 999, dispute_id: str = "du_1",
            charge_id: str | None = None) -> dict:
    """A Dispute as stripe-python's model has it (current API version), built field by field."""
    return {"id": dispute_id, "object": "dispute", "amount": amount, "balance_transactions": [],
            "charge": charge_id or f"ch_{pi[3:]}", "created": int(time.time()), "currency": "usd",
            "enhanced_eligibility_types": [], "evidence": {}, "evidence_details": {"has_evidence": False},
            "is_charge_refundable": status.startswith("warning_"), "livemode": False, "metadata": {},
            "payment_intent": pi, "payment_method_details": {"type": "card"}, "reason": "fraudulent",
            "status": status}


def latest_charge(stripe_fake, payment_intent: str) -> str:
    """The charge id of a PaymentIntent in the Stripe fake."""
    return stripe_fake.client().v1.payment_intents.retrieve(payment_intent).latest_charge


def refund_to(stripe_fake, payment_intent: str, refunded: int, **kw) -> tuple[dict, dict]:
    """Refund the PaymentIntent's charge in the fake up to ``refunded`` in all (cumulative, as
    ``charge.refunded`` counts): (the new Refund, the ``charge.refunded`` event Stripe would send)."""
    charge_id = latest_charge(stripe_fake, payment_intent)
    already = stripe_fake.charge(charge_id)["amount_refunded"]
    made = stripe_fake.refund(charge=charge_id, amount=refunded - already, **kw) if refunded > already else None
    return made, event("charge.refunded", stripe_fake.charge(charge_id))


def order(services, transaction_id: str, namespace: str = "demo"):
    """The order's state, reason, attention and rows, read fresh from the ledger (or None)."""
    from middleware.ledger import repository as repo
    with services.session() as session:
        f = repo.find(session, namespace, "stripe", transaction_id)
        if f is None:
            return None
        return {"id": f.id, "state": f.state, "reason": f.reason, "attention": f.attention,
                "player": f.player_id, "environment": f.environment, "lookup": f.lookup,
                "items": [(i.target, i.amount, i.state, i.revoked_amount, i.error_code) for i in f.items]}


def inbound(services, event_id: str | None = None, source: str = "stripe"):
    """Inbound events of ``source`` as (provider event id, outcome, detail), oldest first."""
    from sqlalchemy import select

    from middleware.ledger.models import InboundEvent
    with services.session() as session:
        stmt = select(InboundEvent).where(InboundEvent.source == source).order_by(InboundEvent.id)
        rows = session.scalars(stmt).all()
        return [(r.provider_event_id, r.outcome, r.detail) for r in rows
                if event_id is None or r.provider_event_id.endswith(":" + event_id)]


def balances(emulator, player: str = "player-1") -> tuple[dict, dict]:
    """(wallet, inventory) of a player in Kraty; empty for an unknown player."""
    from tests.support.accelbyte import balances as kraty_balances
    return kraty_balances(emulator, player)


def write_catalog(catalog_path: str, target, **changes: str) -> str:
    """A copy of the test catalog with lines of the demo game's [stripe] table replaced, e.g.
    ``partial_refunds='"proportional"'``, ``allow_sandbox="false"``."""
    import re
    text = Path(catalog_path).read_text()
    for key, value in changes.items():
        text, count = re.subn(rf"^{key} = .*$", f"{key} = {value}", text, count=1, flags=re.M)
        assert count == 1, key
    target.write_text(text)
    return str(target)
