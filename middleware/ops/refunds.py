"""Refund an order through its store (``admin``: money leaves the studio) — Stripe and Google Play; the App
Store does not let developers refund (``store_cannot_refund``, with what to do instead).

One audited action, in three steps, each retry-safe:

1. the audit entry is written first (reason, the order before, ``refund.status: asking``) — its id makes the
   store's idempotency key (``kraty-bridge-refund-<audit id>``), so the same request sent again after a lost
   answer never refunds twice;
2. the store is asked (``stores.stripe_refunds`` / ``stores.google_play_refunds``). Unreachable (network, 5xx,
   429): ``503 store_unavailable``, nothing recorded as refunded — send the same idempotency key again. Refused
   (a 4xx: already refunded, amount too large...): ``422 store_refused`` with the store's message; the order is
   unchanged and the audit entry says ``refused``;
3. the store's answer is recorded in ONE transaction: the audit entry's ``refund`` (the store's refund id and
   status) and a note in the order's history (``action: refund``), plus the Refund id as one of the order's
   payment ids (Stripe). Then the goods are taken back only through the normal reversal path, when the store
   confirms: a Stripe Refund already ``succeeded`` is recorded like ``refund.updated`` records it (one key per
   Refund: the store's own events, before or after, change nothing more); a ``pending`` one waits for its
   event; a Google refund waits for its voided purchase. Partial Stripe refunds follow the game's
   ``partial_refunds`` policy, as any refund does.
"""
from __future__ import annotations

from sqlalchemy.exc import IntegrityError

from middleware.ledger import repository as repo
from middleware.ledger.models import AuditEntry, Fulfilment
from middleware.ops.actions import _fingerprint, answer, finish_entry, snapshot
from middleware.ops.audit import audit_row, entry_for_key
from middleware.ops.base import MAX_AMOUNT, Actor, OpsError, check_reason_and_key
from middleware.ops.queries import _visible
from middleware.orders import payment_refs
from middleware.orders.refund_requests import ASKED
from middleware.services import Services
from middleware.stores import google_play_refunds, stripe_refunds
from middleware.stores.errors import StoreError

REFUND, REFUND_ROLE = "refund", "admin"
REFUNDABLE = ("stripe", "google_play")
ASKING, UNREACHABLE, REFUSED = "asking", "unreachable", "refused"
APP_STORE_MESSAGE = ("The App Store does not let developers refund: the customer asks Apple "
                     "(reportaproblem.apple.com). When Apple asks for consumption information "
                     "(CONSUMPTION_REQUEST), the bridge answers it; Apple's refund then takes the goods back.")
STOREFRONT_MESSAGE = "A storefront order is refunded in the storefront; its revoke call takes the goods back."


def store_refusal(source: str) -> str | None:
    """Why the bridge cannot refund an order of ``source`` (None: it can)."""
    if source == "app_store":
        return APP_STORE_MESSAGE
    return None if source in REFUNDABLE else STOREFRONT_MESSAGE


def _validate(reason, idempotency_key, amount, stripe_reason, revoke) -> tuple[str, dict]:
    reason, fields = check_reason_and_key(reason, idempotency_key)
    if amount is not None and (isinstance(amount, bool) or not isinstance(amount, int)
                               or not 0 < amount <= MAX_AMOUNT):
        fields["amount"] = ["a positive integer in the currency's minor units (cents), or none for all of it"]
    if stripe_reason is not None and stripe_reason not in stripe_refunds.REASONS:
        fields["stripeReason"] = [f"one of {', '.join(stripe_refunds.REASONS)}"]
    if not isinstance(revoke, bool):
        fields["revoke"] = ["true or false"]
    if fields:
        raise OpsError(422, "validation_failed", "the request does not validate", {"fields": fields})
    return reason, {"amount": amount, "stripeReason": stripe_reason, "revoke": revoke}


def _check_order(f: Fulfilment, params: dict) -> None:
    refusal = store_refusal(f.source)
    if refusal is not None:
        raise OpsError(422, "store_cannot_refund", refusal, {"source": f.source})
    fields = {}
    if f.source == "google_play" and params["amount"] is not None:
        fields["amount"] = ["Google Play refunds a whole order: leave the amount out"]
    if f.source == "google_play" and params["stripeReason"] is not None:
        fields["stripeReason"] = ["a Stripe refund's reason: not for a Google Play order"]
    if f.source == "stripe" and not params["revoke"]:
        fields["revoke"] = ["a Stripe refund takes the goods back by the game's refund policy: revoke stays true"]
    if fields:
        raise OpsError(422, "validation_failed", "the request does not fit the order's store", {"fields": fields})


def refund(services: Services, actor: Actor, fulfilment_id: str, reason, *, amount=None, stripe_reason=None,
           revoke=True, idempotency_key: str | None = None) -> dict:
    """Refund the order through its store (see the module); answers like ``ops.perform`` plus ``refund``."""
    reason, params = _validate(reason, idempotency_key, amount, stripe_reason, revoke)
    if not actor.may(REFUND_ROLE):
        raise OpsError(403, "forbidden", f"refund needs the {REFUND_ROLE} role; {actor.name} has {actor.role}")
    stored_key = f"{actor.name}|{idempotency_key}" if idempotency_key is not None else None
    request = {**params, "fingerprint": _fingerprint(REFUND, fulfilment_id, reason, params)}
    if stored_key is not None and (entry_id := _existing(services, stored_key, request)) is not None:
        return _resume(services, entry_id)
    with services.session() as session:
        f = _visible(session, actor, fulfilment_id)
        repo.load(session, f.id)
        _check_order(f, params)
        if services.catalog.game(f.namespace) is None:
            raise OpsError(409, "invalid_state", f"game {f.namespace} is not in the catalog: its store keys are "
                                                 "unknown", {"state": f.state})
        if f.source == "stripe":
            payment, missing = stripe_refunds.payment_of(session, f), "no PaymentIntent or charge"
        else:
            payment, missing = google_play_refunds.order_id_of(f), "no Google Play order id"
        if payment is None:
            raise OpsError(409, "invalid_state", f"the ledger knows {missing} for this order", {"state": f.state})
        before = snapshot(f)
        entry = audit_row(actor, REFUND, f, reason, before,
                          {**before, "request": request, "refund": {"store": f.source, "status": ASKING,
                                                                     "payment": payment, **params}}, stored_key)
        session.add(entry)
        try:
            session.commit()
        except IntegrityError:  # the same idempotency key, concurrently: the other call's answer
            session.rollback()
            if stored_key is None or (entry_id := _existing(services, stored_key, request)) is None:
                raise
            return _resume(services, entry_id)
        entry_id = entry.id
    return _ask(services, entry_id)


def _existing(services: Services, stored_key: str, request: dict) -> int | None:
    with services.session() as session:
        entry = entry_for_key(session, stored_key, request)
        return None if entry is None else entry.id


def _resume(services: Services, entry_id: int) -> dict:
    """The same request again: ask the store again if its answer never came, else the first answer."""
    with services.session() as session:
        entry = session.get(AuditEntry, entry_id)
        asked = dict(entry.after["refund"])
        if asked["status"] not in (ASKING, UNREACHABLE):
            if asked["status"] == REFUSED:
                raise _refused(asked, entry_id)
            return _answer(entry, replayed=True)
    return _ask(services, entry_id, replayed=True)


def _refused(asked: dict, entry_id: int) -> OpsError:
    return OpsError(422, "store_refused", f"{asked.get('error')} — nothing was refunded and the order is unchanged",
                    {"auditId": entry_id, "storeCode": asked.get("errorCode")})


def _answer(entry: AuditEntry, replayed: bool = False) -> dict:
    return {**answer(entry, replayed), "refund": entry.after.get("refund")}


def _ask(services: Services, entry_id: int, replayed: bool = False) -> dict:
    with services.session() as session:
        entry = session.get(AuditEntry, entry_id)
        f = session.get(Fulfilment, entry.target_id)
        asked = dict(entry.after["refund"])
        game = services.catalog.game(f.namespace)
        order = {"id": f.id, "audit": entry_id, "payment": asked["payment"], "livemode": f.environment == "production",
                 "account": stripe_refunds.account_of(session, f) if asked["store"] == "stripe" else None}
    key = f"kraty-bridge-refund-{entry_id}"
    try:
        if asked["store"] == "stripe":
            got = stripe_refunds.ask(services, game, order, asked["amount"], asked["stripeReason"], key)
            asked.update(id=got["id"], status=got["status"], amount=got["amount"], currency=got.get("currency"),
                         idempotencyKey=key)
        else:
            asked.update(google_play_refunds.ask(services, game, asked["payment"], asked["revoke"]))
    except StoreError as exc:
        asked.update(status=UNREACHABLE if exc.transient else REFUSED, error=str(exc), errorCode=exc.code)
        _finish(services, entry_id, asked, None)
        if exc.transient:
            raise OpsError(503, "store_unavailable", f"{exc}: nothing is recorded as refunded; send the same request "
                                                     "(same idempotency key) again — the store will not refund twice",
                           {"auditId": entry_id}) from None
        raise _refused(asked, entry_id) from None
    asked.pop("error", None)
    asked.pop("errorCode", None)
    note = {"action": ASKED, "store": asked["store"], "by": entry.actor, "audit": entry_id, "reason": entry.reason}
    if asked["store"] == "stripe":
        note.update(refund=asked["id"], amount=asked["amount"], status=asked["status"])
    else:
        note.update(order=asked["payment"], revoke=asked["revoke"])
    _finish(services, entry_id, asked, note)
    if asked["store"] == "stripe":
        stripe_refunds.confirm(services, game, got, asked["payment"], entry.actor, entry_id)
    return _answer(_finish(services, entry_id, asked, None), replayed)


def _finish(services: Services, entry_id: int, asked: dict, note: dict | None) -> AuditEntry:
    """The audit entry's ``refund`` and ``after`` (and the order's note) in one transaction."""
    def change(session, f, entry):
        if note is not None:
            repo.note(f, entry.actor, note)
            if note.get("refund"):  # the Refund id names the order's payment too
                payment_refs.attach(session, "stripe", [note["refund"]], f.id)
        entry.after = {**snapshot(f), "request": entry.after["request"], "refund": asked}
    return finish_entry(services, entry_id, change,
                        "the order kept changing; the refund is asked, its note is not: send it again")
