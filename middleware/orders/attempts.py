"""Attempts: grant or take back an order's items in Kraty, record each result, move the state machine.

The same code runs inline (a fulfil PUT's first attempt) and in RQ jobs. An attempt first takes the
order's lease (a conditional UPDATE), so two processes never call Kraty for the same item at once;
a crash mid-attempt leaves the lease to expire and the next attempt repeats the call with the same
idempotency key, which Kraty answers as a replay.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import text
from sqlalchemy.orm.exc import StaleDataError

from middleware.kraty.client import KratyError
from middleware.ledger import repository as repo
from middleware.ledger import states
from middleware.ledger.models import Fulfilment, FulfilmentItem, utcnow
from middleware.metrics import recorders as metrics
from middleware.orders import price_check, purchase_events, retry, reversals
from middleware.orders.changes import PLAYER_UNRESOLVED, settle_never_granted
from middleware.orders.lines import (build_items, grant_amount, grant_key, key_source, request_hash, resolve_line,
                                     revoke_key, revoke_target)
from middleware.services import Services
from middleware.stores import lookups
from middleware.stores.errors import StoreError

log = logging.getLogger(__name__)

FULFIL_STATES = (states.RECEIVED, states.FULFILLING)
REVOKE_STATES = (states.REVOKING,)


@dataclass
class Outcome:
    """What an attempt did: ``ran`` False if another process held the order."""

    ran: bool
    state: str | None = None
    retry_in: float | None = None
    attempts: int = 0
    followup: bool = False  # granted: the store is now to be told (Google Play consume / acknowledge)
    deliveries: tuple = ()  # sink deliveries of the purchase event this attempt emitted (enqueued after commit)


def _grant(client, f: Fulfilment, item: FulfilmentItem) -> str | None:
    item.idempotency_key = grant_key(key_source(f.source, f.key_scope), f.transaction_id, item)
    reason = f"{f.source} purchase {f.transaction_id}: {item.sku}"
    amount = grant_amount(item)
    if item.kind == "currency":
        data = client.credit(f.player_id, item.target, amount, reason=reason, source_ref=f.transaction_id,
                             key=item.idempotency_key)
    else:
        data = client.grant_item(f.player_id, item.target, amount, reason=reason, source_ref=f.transaction_id,
                                 key=item.idempotency_key)
    return data.get("ledgerEntryId")


def _take_back(client, f: Fulfilment, item: FulfilmentItem, allow_negative: bool) -> str | None:
    key = revoke_key(key_source(f.source, f.key_scope), f.transaction_id, item)
    reason = f"{f.source} revocation {f.transaction_id}: {item.sku}"
    amount = revoke_target(item) - item.revoked_amount
    if item.kind == "currency":
        data = client.debit(f.player_id, item.target, amount, reason=reason, source_ref=f.transaction_id,
                            key=key, allow_negative=allow_negative)
    else:
        data = client.revoke_item(f.player_id, item.target, amount, reason=reason,
                                  source_ref=f.transaction_id, key=key)
    return data.get("ledgerEntryId")


def _granted(item: FulfilmentItem, entry_id: str | None) -> None:
    item.kraty_entry_id, item.state = entry_id, states.ITEM_GRANTED


def _taken_back(item: FulfilmentItem, entry_id: str | None) -> None:
    """A take-back step done: the row is REVOKED once all of it is gone, else it stays GRANTED (partly)."""
    item.revoked_amount = revoke_target(item)
    item.revoke_entry_id = entry_id
    item.state = states.ITEM_REVOKED if item.revoked_amount >= item.amount else states.ITEM_GRANTED


def _owes_take_back(item: FulfilmentItem) -> bool:
    return item.state == states.ITEM_GRANTED and revoke_target(item) > item.revoked_amount


def _run_calls(items, call, done, failed_state: str):
    """Call Kraty for each item; stop at the first transient error (Kraty is likely struggling)."""
    summary = {"done": [], "failed": []}
    transient: KratyError | None = None
    now = utcnow()
    for item in items:
        try:
            entry_id = call(item)
        except KratyError as exc:
            item.error_code, item.error, item.updated_at = exc.code, str(exc), now
            if exc.transient:
                transient = exc
                break
            item.state = failed_state
            summary["failed"].append({"item": item.id, "target": item.target, "error": str(exc)})
            continue
        amount = revoke_target(item) - item.revoked_amount if done is _taken_back else grant_amount(item)
        done(item, entry_id)
        item.error_code, item.error, item.updated_at = None, None, now
        summary["done"].append({"item": item.id, "target": item.target, "amount": amount, "entry": entry_id})
    return summary, transient


def _finish(services: Services, f: Fulfilment, actor: str, summary: dict, transient: KratyError | None,
            success: str, failure: str, pending: bool, any_failed: bool) -> Outcome:
    settings = services.settings
    now = utcnow()
    detail = {"attempt": f.attempts, **summary}
    repo.release(f)
    f.next_attempt_at = None
    if pending:
        detail["transient"] = str(transient) if transient else "not attempted"
        age = (now - f.state_changed_at).total_seconds()  # since this fulfil or revoke began
        delay = retry.for_orders(settings).next_delay(f.attempts, transient.retry_after if transient else None, age)
        if delay is not None:
            f.next_attempt_at = now + timedelta(seconds=delay)
            f.reason = f"retrying after transient error: {transient}"
            detail["retry_in"] = round(delay, 3)
            repo.note(f, actor, detail, now)
            log.info("order %s attempt %d: %s, retry in %.1f s (%s)", f.id, f.attempts, f.state, delay, transient)
            return Outcome(True, f.state, delay, f.attempts)
        repo.set_state(f, failure, actor, detail, reason=f"retries exhausted after {f.attempts} attempts: {transient}",
                       now=now)
    elif any_failed:
        errors = [item.error for item in f.items if item.state in (states.ITEM_FAILED, states.ITEM_REVOKE_FAILED)]
        repo.set_state(f, failure, actor, detail, reason=f"{len(errors)} item(s) failed: {errors[0]}", now=now)
    else:
        repo.set_state(f, success, actor, detail, now=now)
    log.info("order %s attempt %d: %s%s", f.id, f.attempts, f.state, f" ({f.reason})" if f.reason else "")
    followup = bool(f.followup) and f.followup_state is None and f.state == states.FULFILLED
    if followup:
        f.followup_state, f.followup_at = "pending", now
    deliveries = purchase_events.emit_outcome(services, f, success, now)
    return Outcome(True, f.state, None, f.attempts, followup, tuple(deliveries))


def _commit(session, fulfilment_id: str, outcome: Outcome, results: bool = False) -> Outcome:
    """Commit an attempt's results unless our lease was taken over meanwhile (the version moved on):
    then the new holder repeats the calls with the same idempotency keys, and ours are dropped.

    ``results``: this commit records what Kraty answered. On PostgreSQL it does not wait for the
    WAL flush (synchronous_commit off for this transaction only): if the database server crashed
    in the next few hundred milliseconds and lost it, the order would still be active and its
    next attempt would repeat the calls with the same keys and get Kraty's replayed answers.
    Every other commit — the order itself, a claim before Kraty is called — stays synchronous.
    """
    try:
        if results and session.get_bind().dialect.name == "postgresql":
            session.execute(text("SET LOCAL synchronous_commit = off"))  # flushes: may raise StaleDataError
        session.commit()
    except StaleDataError:
        session.rollback()
        log.warning("lease on %s was taken over during the attempt; its results are left to the new holder",
                    fulfilment_id)
        return Outcome(False)
    return outcome


def attempt_fulfil(services: Services, fulfilment_id: str, actor: str) -> Outcome:
    """Take the lease of an order being fulfilled and grant its PENDING items in Kraty."""
    return _claim_and_run(services, fulfilment_id, actor, FULFIL_STATES, fulfil_loaded)


def attempt_revoke(services: Services, fulfilment_id: str, actor: str) -> Outcome:
    """Take the lease of an order being revoked and take back what it granted."""
    return _claim_and_run(services, fulfilment_id, actor, REVOKE_STATES, revoke_loaded)


def _claim_and_run(services: Services, fulfilment_id: str, actor: str, allowed: tuple[str, ...], run) -> Outcome:
    with services.session() as session:
        if not repo.claim(session, fulfilment_id, services.identity, services.settings.lease_seconds, allowed,
                          commit=False):
            return Outcome(False)
        return run(services, session, repo.load(session, fulfilment_id), actor)


def attempt_loaded(services: Services, session, f: Fulfilment, actor: str) -> Outcome:
    """Whichever attempt the state of an order in hand (lease held) calls for."""
    return (revoke_loaded if f.state == states.REVOKING else fulfil_loaded)(services, session, f, actor)


def _settled(services: Services, f: Fulfilment) -> Outcome:
    """The outcome of an attempt that ended before any Kraty call (its event, if it failed, included)."""
    deliveries = purchase_events.emit_outcome(services, f, states.FULFILLED, utcnow())
    return Outcome(True, f.state, None, f.attempts, deliveries=tuple(deliveries))


def _look_up(services: Services, session, f: Fulfilment, actor: str) -> Outcome | None:
    """Fetch the order's lines (and player) from its store; None to go on with the attempt."""
    try:
        found = lookups.run(services, f)
    except StoreError as exc:
        f.attempts += 1
        detail = {"lookup": f.lookup, "error": str(exc)}
        if exc.transient:
            return _commit(session, f.id, _finish(services, f, actor, detail, exc, states.FULFILLED,
                                                   states.FULFILL_FAILED, pending=True, any_failed=False), True)
        repo.release(f)
        f.next_attempt_at = None
        repo.set_state(f, states.FULFILL_FAILED, actor, detail, reason=f"{exc.code}: {exc}")
        log.info("order %s lookup failed: %s", f.id, exc)
        return _commit(session, f.id, _settled(services, f), True)
    game = services.catalog.game(f.namespace)
    if f.items:  # looked up before (its player was missing): the old rows go before the new take their keys
        f.items.clear()
        session.flush()
    f.lines, f.request_hash = found.lines, request_hash(found.lines)
    f.items = build_items([resolve_line(game, line) for line in found.lines], f.created_at)
    f.player_id = f.player_id or found.player_id
    repo.note(f, actor, {"lookup": "done", "lines": len(found.lines)})
    if not price_check.apply(f, game, found.paid, actor):  # price_mismatch / price_unknown: nothing granted
        f.lookup = None
        repo.release(f)
        return _commit(session, f.id, _settled(services, f), True)
    if f.player_id is not None:
        f.lookup = None
    else:  # kept: a retry looks the store up again, once the studio has named the player there
        repo.release(f)
        repo.set_state(f, states.FULFILL_FAILED, actor, {"error": PLAYER_UNRESOLVED},
                       reason=f"{PLAYER_UNRESOLVED}: the store names no player for this order")
        return _commit(session, f.id, _settled(services, f), True)
    reversals.apply_pending(session, f, game, actor)  # partial refunds that waited for the lines
    if f.state not in FULFIL_STATES:
        repo.release(f)
        return _commit(session, f.id, _settled(services, f), True)
    return None


def fulfil_loaded(services: Services, session, f: Fulfilment, actor: str) -> Outcome:
    """The fulfil attempt on an order ``session`` has loaded, whose lease the caller holds; commits.

    RECEIVED means "Kraty has never been called for this order" (a refund may then cancel it
    outright), so the move to FULFILLING is committed, with the claim, before the first call.
    An order whose lines must first be fetched from its store is looked up before that.
    """
    if f.lookup:
        if not _commit(session, f.id, Outcome(True)).ran:  # the claim is durable before the store call
            return Outcome(False)
        early = _look_up(services, session, f, actor)
        if early is not None:
            return early
    if f.state == states.RECEIVED:
        repo.set_state(f, states.FULFILLING, actor)
    if not _commit(session, f.id, Outcome(True)).ran:
        return Outcome(False)
    f.attempts += 1
    client = services.kraty(f.namespace)
    todo = [item for item in f.items if item.state == states.ITEM_PENDING and item.kind]
    summary, transient = _run_calls(todo, lambda item: _grant(client, f, item), _granted, states.ITEM_FAILED)
    pending = any(item.state == states.ITEM_PENDING for item in f.items)
    any_failed = any(item.state == states.ITEM_FAILED for item in f.items)
    outcome = _finish(services, f, actor, summary, transient, states.FULFILLED, states.FULFILL_FAILED,
                      pending, any_failed)
    return metrics.after_fulfil_attempt(f, _commit(session, f.id, outcome, results=True))


def revoke_loaded(services: Services, session, f: Fulfilment, actor: str) -> Outcome:
    """The revoke attempt on an order ``session`` has loaded, whose lease the caller holds; commits."""
    if not _commit(session, f.id, Outcome(True)).ran:  # the claim is durable before any call
        return Outcome(False)
    f.attempts += 1
    settle_never_granted(f, actor)  # an order without a player: nothing to ask Kraty about
    client = services.kraty(f.namespace)
    allow_negative = services.catalog.game(f.namespace).negative_balance_policy == "allow_negative"
    # Items whose grant outcome is unknown (a timeout, a crash mid-call) are settled first by
    # replaying the grant with its key: Kraty then either answers the grant it made or makes it now;
    # a refusal means it never granted. Only then is anything taken back: never more than was given.
    unsettled = [item for item in f.items if item.state == states.ITEM_PENDING]
    summary, transient = _run_calls(unsettled, lambda item: _grant(client, f, item), _granted, states.ITEM_SKIPPED)
    if transient is None:
        todo = [item for item in f.items if _owes_take_back(item)]
        taken, transient = _run_calls(todo, lambda item: _take_back(client, f, item, allow_negative), _taken_back,
                                      states.ITEM_REVOKE_FAILED)
        summary = {"settled": summary["done"], "never_granted": summary["failed"], **taken}
    pending = any(item.state == states.ITEM_PENDING or _owes_take_back(item) for item in f.items)
    any_failed = any(item.state == states.ITEM_REVOKE_FAILED for item in f.items)
    # a partial take-back leaves rows GRANTED (less what was taken): the order is then FULFILLED again
    partly = any(item.state == states.ITEM_GRANTED for item in f.items)
    outcome = _finish(services, f, actor, summary, transient, states.FULFILLED if partly else states.REVOKED,
                      states.REVOKE_FAILED, pending, any_failed)
    return _commit(session, f.id, outcome, results=True)
