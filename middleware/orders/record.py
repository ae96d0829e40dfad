"""Record what a store reported — a purchase, a refund or dispute — in the ledger, exactly once.

Shared by every store: the mappers turn a verified payload into a canonical ``Purchase`` or
``Reversal``, these functions write it (one transaction each) and then attempt the order.

A purchase and a reversal of the same payment can be handled at the same moment by two workers;
both first lock the payment's ``PaymentRef`` row (inserting it if absent), so one of them sees
the other's result: a refund recorded first is found by the purchase, a purchase recorded first
is found by the refund. The same row makes one payment one order, never two.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlalchemy import or_, select
from sqlalchemy.exc import IntegrityError

from config.catalog import Game
from mappers.canonical import Purchase
from mappers.canonical import Reversal as ReversalNotice

from middleware.orders import actions

from middleware.orders import attempts
from middleware.orders import create

from middleware.orders import payment_refs

from middleware.orders import player_links

from middleware.orders import price_check

from middleware.orders import retry

from middleware.orders import reversals
from middleware.orders.changes import PLAYER_UNRESOLVED
from middleware.ledger import repository as repo
from middleware.ledger import states
from middleware.ledger.models import Fulfilment, Reversal, utcnow
from middleware.orders.lines import resolve_line
from middleware.services import Services

log = logging.getLogger(__name__)

lock_payment_ref = payment_refs.lock  # the payment's row, inserted if absent, locked until the transaction ends


@dataclass(frozen=True)
class Recorded:
    outcome: str                 # created | duplicate | duplicate_payment | waiting | applied | busy
    fulfilment_id: str | None
    detail: str = ""

    def as_event_result(self, what: str = "") -> tuple[str, str, str | None]:
        """(outcome, detail, fulfilment id) for the inbound event that led here (stores/recorded_events.py)."""
        said = f"{self.outcome}{': ' + self.detail if self.detail else ''}"
        return "processed", f"{what}: {said}" if what else said, self.fulfilment_id


def _new_order(game: Game, p: Purchase, player_id: str | None, actor: str) -> Fulfilment:
    return create.new_order(namespace=game.namespace, source=p.source, transaction_id=p.transaction_id,
                            lines=p.lines, resolved=[resolve_line(game, line) for line in p.lines], actor=actor,
                            detail=p.detail, player_key=p.player_key, followup=p.followup, price=p.price,
                            currency=p.currency, player_id=player_id, environment=p.environment, lookup=p.lookup)


class OtherPlayer(Exception):
    """A receipt for a purchase that is another player's."""

    def __init__(self, fulfilment_id: str | None, message: str):
        super().__init__(message)
        self.fulfilment_id = fulfilment_id


def record_purchase(svc: Services, game: Game, p: Purchase, actor: str, *, receipt_player: str | None = None) -> Recorded:
    """Create the order (once) and attempt it; a payment already fulfilled as another order is not.

    ``receipt_player``: a studio backend says the purchase is this player's (a receipt): its ids are
    linked to the player, an order held without a player is given it, and a purchase that is another
    player's raises OtherPlayer (nothing changes).
    """
    give_player = None
    with svc.session() as session:
        ref = lock_payment_ref(session, p.source, p.payment_ref) if p.payment_ref else None
        if receipt_player is not None:
            taken = player_links.link(session, game.namespace, p.source, receipt_player, list(p.player_keys[:1]))
            if taken:
                session.rollback()
                raise OtherPlayer(ref.fulfilment_id if ref else None, f"{p.source} purchase {p.transaction_id} was "
                                                                      "redeemed by another player")
            player_links.link(session, game.namespace, p.source, receipt_player, list(p.player_keys[1:]))
        existing = None
        if ref is not None and ref.fulfilment_id is not None:
            existing = session.get(Fulfilment, ref.fulfilment_id)
            if existing.namespace != game.namespace or existing.transaction_id != p.transaction_id:
                return Recorded("duplicate_payment", existing.id,
                                f"payment {p.payment_ref} was already fulfilled as {existing.transaction_id}")
        existing = existing or repo.find(session, game.namespace, p.source, p.transaction_id)
        if existing is not None:
            if receipt_player is not None and existing.player_id not in (None, receipt_player):
                session.rollback()
                raise OtherPlayer(existing.id, f"{p.source} purchase {p.transaction_id} belongs to another player")
            give_player = receipt_player if existing.player_id is None else None
            if give_player is not None and not (existing.reason or "").startswith(PLAYER_UNRESOLVED):
                existing.player_id, give_player = give_player, None  # named only: it failed for another reason
            late_reversals = payment_refs.attach(session, p.source, p.extra_refs, existing.id)
            session.commit()
            fulfilment_id = existing.id
        else:
            player_id = receipt_player or p.player_id or player_links.find_player(session, p.source,
                                                                                 list(p.player_keys))
            f = _new_order(game, p, player_id, actor)
            try:
                with session.begin_nested():
                    session.add(f)
            except IntegrityError:  # recorded meanwhile by a purchase without a payment ref to lock
                session.rollback()
                found = repo.find(session, game.namespace, p.source, p.transaction_id)
                return Recorded("duplicate", found.id if found else None)
            if ref is not None:
                ref.fulfilment_id = f.id
                reversals.link_waiting(session, p.source, p.payment_ref, f.id)
            payment_refs.attach(session, p.source, p.extra_refs, f.id)
            if price_check.apply(f, game, price_check.paid_of(p), actor) and f.player_id is None:
                repo.set_state(f, states.FULFILL_FAILED, actor, {"error": PLAYER_UNRESOLVED},
                               reason=f"{PLAYER_UNRESOLVED}: {p.detail.get('player_hint') or 'no player named'}")
            reversals.apply_pending(session, f, game, actor)
            session.commit()
            fulfilment_id, state = f.id, f.state
    if existing is not None:
        if give_player is not None:  # held as player_unresolved: the receipt names the player
            state = actions.run(svc, fulfilment_id, actor, actions.RETRY, player_id=give_player)
            return Recorded("player_attached", fulfilment_id, state or "")
        if late_reversals:  # a refund or dispute that named one of the payment's other ids was waiting
            actions.run(svc, fulfilment_id, actor, actions.REVERSE)
        return Recorded("duplicate", fulfilment_id)
    log.info("order %s recorded from %s %s: %s", fulfilment_id, p.source, p.transaction_id, state)
    if state in states.ACTIVE:
        outcome = attempts.attempt_fulfil(svc, fulfilment_id, actor) if state != states.REVOKING else \
            attempts.attempt_revoke(svc, fulfilment_id, actor)
        retry.schedule(svc, fulfilment_id, outcome)
    return Recorded("created", fulfilment_id, state)


def release_held(svc: Services, game: Game, source: str, player_id: str, keys: list[str], actor: str) -> list[str]:
    """Orders held as player_unresolved that one of ``keys`` names: given the player and fulfilled."""
    with svc.session() as session:
        ids = session.scalars(select(Fulfilment.id).where(
            Fulfilment.namespace == game.namespace, Fulfilment.source == source, Fulfilment.player_id.is_(None),
            Fulfilment.state == states.FULFILL_FAILED, Fulfilment.reason.startswith(PLAYER_UNRESOLVED),
            or_(Fulfilment.transaction_id.in_(keys), Fulfilment.player_key.in_(keys)))).all()
    for fulfilment_id in ids:
        actions.run(svc, fulfilment_id, actor, actions.RETRY, player_id=player_id)
    return list(ids)


def record_reversal(svc: Services, notice: ReversalNotice, namespace: str | None, actor: str) -> Recorded:
    """Store a refund or dispute once; apply it now if its order is known, else when the purchase comes."""
    with svc.session() as session:
        ref = lock_payment_ref(session, notice.source, notice.ref)
        row = Reversal(source=notice.source, reversal_key=notice.key, ref=notice.ref, kind=notice.kind,
                       store_ref=notice.store_ref,
                       amount=notice.amount, total=notice.total, currency=notice.currency,
                       detail={**notice.detail, **({"namespace": namespace} if namespace else {})},
                       state=reversals.PENDING, fulfilment_id=ref.fulfilment_id, created_at=utcnow())
        if not reversals.record(session, row):
            return Recorded("duplicate", ref.fulfilment_id)
        session.commit()
        fulfilment_id = ref.fulfilment_id
    if fulfilment_id is None:
        log.info("%s %s for %s waits for its purchase", notice.kind, notice.key, notice.ref)
        return Recorded("waiting", None, f"no order for payment {notice.ref} yet: applied when its purchase arrives")
    state = actions.run(svc, fulfilment_id, actor, actions.REVERSE)
    if state is None:  # the order is busy: the reconciler applies it once its attempt is over
        return Recorded("busy", fulfilment_id)
    return Recorded("applied", fulfilment_id, state)
