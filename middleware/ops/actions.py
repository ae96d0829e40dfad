"""Actions on an order (retry, revoke, attach-player, make-good, resolve): checked, changed under the
order's lease, audited in the same transaction, replayed by idempotency key."""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError

from mappers.accelbyte import is_clean_id
from middleware.kraty.client import KratyError
from middleware.ledger import repository as repo
from middleware.ledger import states
from middleware.ledger.models import AuditEntry, Fulfilment
from middleware.ops.audit import audit_row, entry_for_key
from middleware.ops.base import (ACTION_ROLES, ATTACH_PLAYER, MAKE_GOOD, MAX_AMOUNT, MAX_MAKE_GOOD_LINES, RESOLVE,
                                 RETRY, REVOKE, Actor, OpsError, check_reason_and_key)
from middleware.ops.queries import _visible
from middleware.orders import actions
from middleware.orders.changes import PLAYER_UNRESOLVED
from middleware.services import Services

# -- actions ------------------------------------------------------------------------------------------

def snapshot(f: Fulfilment) -> dict:
    """What the audit log keeps of an order before and after an action: its state and rows."""
    return {"state": f.state, "reason": f.reason, "playerId": f.player_id,
            "items": [{"id": i.id, "sku": i.sku, "target": i.target, "amount": i.amount,
                       "revoked": i.revoked_amount, "state": i.state} for i in f.items]}


def _granted_something(f: Fulfilment) -> bool:
    """Something was, or may have been, granted: a granted row, one whose take-back failed, or one whose
    grant outcome is unknown (a call made, its answer lost) on an order past RECEIVED."""
    return any(i.kind is not None and (i.state in (states.ITEM_GRANTED, states.ITEM_REVOKE_FAILED)
                                       or (i.state == states.ITEM_PENDING and f.state != states.RECEIVED))
               for i in f.items)


def _unresolved_player(f: Fulfilment) -> bool:
    return f.state == states.FULFILL_FAILED and (f.player_id is None
                                                 or (f.reason or "").startswith(PLAYER_UNRESOLVED))


def check_state(f: Fulfilment, action: str) -> None:
    """OpsError 409 ``invalid_state`` (details.state: the order's state) unless ``action`` fits the order."""
    problem = None
    if action == RETRY and f.state not in (states.FULFILL_FAILED, states.REVOKE_FAILED):
        problem = "only a FULFILL_FAILED or REVOKE_FAILED order can be retried"
    elif action == REVOKE and not (f.state in (states.FULFILLED, states.FULFILL_FAILED, states.REVOKE_FAILED,
                                               states.RESOLVED) and _granted_something(f)):
        problem = ("only an order that granted something and is not being worked on can be revoked "
                   "(FULFILLED, FULFILL_FAILED, REVOKE_FAILED or RESOLVED with granted rows)")
    elif action == ATTACH_PLAYER and f.player_id is None and f.state in (states.REVOKING, states.REVOKED):
        problem = ("it was refunded or revoked before any player was known: nothing was granted, so there is "
                   "nothing to attach a player to")
    elif action == ATTACH_PLAYER and not _unresolved_player(f):
        problem = f"a player can be attached only to an order failed with {PLAYER_UNRESOLVED}"
    elif action == RESOLVE and f.state not in (states.FULFILL_FAILED, states.REVOKE_FAILED):
        problem = "only a FULFILL_FAILED or REVOKE_FAILED order can be resolved"
    elif action == MAKE_GOOD and not f.player_id:
        problem = "the order has no player: attach one first"
    if problem:
        raise OpsError(409, "invalid_state", f"order {f.id} is {f.state}: {problem}",
                       {"state": f.state, "action": action})


def _contents(raw) -> list[dict]:
    """Make-good contents: a list of ``{currencyKey, amount}`` / ``{itemKey, quantity}`` (positive integers)."""
    problems = {}
    if not isinstance(raw, list) or not 1 <= len(raw) <= MAX_MAKE_GOOD_LINES:
        raise OpsError(422, "validation_failed", "contents: a list of 1-20 grants",
                       {"fields": {"contents": [f"a list of 1-{MAX_MAKE_GOOD_LINES} grants"]}})
    out = []
    for n, line in enumerate(raw):
        if isinstance(line, dict) and set(line) == {"currencyKey", "amount"}:
            key, count = line["currencyKey"], line["amount"]
        elif isinstance(line, dict) and set(line) == {"itemKey", "quantity"}:
            key, count = line["itemKey"], line["quantity"]
        else:
            problems[str(n)] = ["{currencyKey, amount} or {itemKey, quantity}"]
            continue
        if not (isinstance(key, str) and 0 < len(key) <= 64 and key.isprintable()):
            problems[str(n)] = ["the key: 1-64 printable characters"]
        elif isinstance(count, bool) or not isinstance(count, int) or not 0 < count <= MAX_AMOUNT:
            problems[str(n)] = [f"the amount or quantity: an integer 1-{MAX_AMOUNT}"]
        else:
            out.append(dict(line))
    if problems:
        raise OpsError(422, "validation_failed", "contents do not validate", {"fields": {"contents": problems}})
    return out


def _validate(action: str, reason, idempotency_key, player_id, contents) -> tuple[str, dict]:
    if action not in ACTION_ROLES:
        raise OpsError(404, "not_found", f"no action {action}: one of {', '.join(ACTION_ROLES)}")
    reason, fields = check_reason_and_key(reason, idempotency_key)
    params: dict = {}
    if action == ATTACH_PLAYER:
        if not (isinstance(player_id, str) and is_clean_id(player_id)):
            fields["playerId"] = ["required: 1-128 printable characters without spaces"]
        params["playerId"] = player_id
    if fields:
        raise OpsError(422, "validation_failed", "the request does not validate", {"fields": fields})
    if action == MAKE_GOOD:
        params["contents"] = _contents(contents)
    return reason, params


def _fingerprint(action: str, fulfilment_id: str, reason: str, params: dict) -> str:
    return hashlib.sha256(json.dumps([action, fulfilment_id, reason, params], sort_keys=True).encode()).hexdigest()


@dataclass
class _Pending:
    before: dict | None = None
    audit_id: int | None = None
    extra: dict = field(default_factory=dict)


def answer(entry: AuditEntry, replayed: bool = False) -> dict:
    after = entry.after or {}
    out = {"action": entry.action, "fulfilmentId": entry.target_id, "auditId": entry.id,
           "state": after.get("state"), "before": entry.before, "after": after, "replayed": replayed}
    if "makeGood" in after:
        out["makeGood"] = after["makeGood"]
    return out


def perform(services: Services, actor: Actor, fulfilment_id: str, action: str, reason: str | None, *,
            idempotency_key: str | None = None, player_id: str | None = None, contents=None) -> dict:
    """Do an ops action on an order, audited; answers what :func:`answer` builds from its audit entry.

    The same ``idempotency_key`` (per actor) answers the first call's answer again and changes nothing
    (a make-good whose Kraty call failed for a transient reason is sent again, with the same Kraty key);
    the same key with another action, order or parameters is refused (422 ``idempotency_key_reused``).
    """
    reason, params = _validate(action, reason, idempotency_key, player_id, contents)
    if not actor.may(ACTION_ROLES[action]):
        raise OpsError(403, "forbidden", f"{action} needs the {ACTION_ROLES[action]} role; {actor.name} has "
                                         f"{actor.role}")
    stored_key = f"{actor.name}|{idempotency_key}" if idempotency_key is not None else None
    request = {**params, "fingerprint": _fingerprint(action, fulfilment_id, reason, params)}
    if stored_key is not None:
        replay = _replay(services, stored_key, request)
        if replay is not None:
            return replay
    with services.session() as session:
        f = _visible(session, actor, fulfilment_id)
        repo.load(session, f.id)
        check_state(f, action)  # at once; again under the lease, which is what counts
    try:
        if action == MAKE_GOOD:
            return _make_good(services, actor, fulfilment_id, reason, params, stored_key, request)
        return _leased(services, actor, fulfilment_id, action, reason, params, stored_key, request)
    except IntegrityError:  # the same idempotency key, concurrently: the other call's answer
        if stored_key is None:
            raise
        replay = _replay(services, stored_key, request)
        if replay is None:
            raise
        return replay


def _replay(services: Services, stored_key: str, request: dict) -> dict | None:
    with services.session() as session:
        entry = entry_for_key(session, stored_key, request)
        if entry is None:
            return None
        made = (entry.after or {}).get("makeGood")
        entry_id = entry.id
    if made is not None and made.get("status") == "pending":
        return _grant_make_good(services, entry_id, replayed=True)
    if made is not None and made.get("status") == "failed":
        raise _kraty_refused(made.get("error", ""), entry_id)
    with services.session() as session:
        return answer(session.get(AuditEntry, entry_id), replayed=True)



LEASED = {RETRY: actions.RETRY_FAILED, REVOKE: actions.REVOKE, ATTACH_PLAYER: actions.RETRY,
          RESOLVE: actions.RESOLVE}


def _leased(services: Services, actor: Actor, fulfilment_id: str, action: str, reason: str, params: dict,
            stored_key: str | None, request: dict) -> dict:
    """An action that changes the order under its lease: checked, changed and audited in one transaction,
    then attempted (Kraty called) as the new state asks."""
    pending = _Pending()

    def guard(f: Fulfilment) -> None:
        check_state(f, action)
        pending.before = snapshot(f)

    def on_change(session: Session, f: Fulfilment) -> None:
        entry = audit_row(actor, action, f, reason, pending.before, {**snapshot(f), "request": request}, stored_key)
        session.add(entry)
        session.flush()  # a reused idempotency key fails here, before anything is committed
        pending.audit_id = entry.id

    state = actions.run(services, fulfilment_id, actor.name, LEASED[action], reason=reason,
                        player_id=params.get("playerId"), guard=guard, on_change=on_change)
    if state is None or pending.audit_id is None:
        raise OpsError(409, "busy", "the order is being worked on (an attempt holds it); try again in a moment")
    with services.session() as session:  # the audit entry's "after": the order as the action left it
        entry = session.get(AuditEntry, pending.audit_id)
        if entry is None:  # the attempt lost its lease before committing: nothing was done
            raise OpsError(409, "busy", "the order was taken over by another attempt; try again")
        f = repo.load(session, fulfilment_id)
        entry.after = {**snapshot(f), "request": request}
        session.commit()
        return answer(entry)


def _kraty_refused(message: str, audit_id: int) -> OpsError:
    return OpsError(422, "kraty_refused", f"Kraty refused the make-good grant: {message}", {"auditId": audit_id})


def _make_good(services: Services, actor: Actor, fulfilment_id: str, reason: str, params: dict,
               stored_key: str | None, request: dict) -> dict:
    """Audit first (the entry's id makes the Kraty idempotency key), then grant in Kraty, then note it in the
    order's history."""
    with services.session() as session:
        f = repo.load(session, fulfilment_id)
        check_state(f, MAKE_GOOD)
        before = snapshot(f)
        entry = audit_row(actor, MAKE_GOOD, f, reason, before,
                       {**before, "request": request, "makeGood": {"status": "pending",
                                                                    "contents": params["contents"]}}, stored_key)
        session.add(entry)
        session.commit()
        entry_id = entry.id
    return _grant_make_good(services, entry_id)


def _grant_make_good(services: Services, entry_id: int, replayed: bool = False) -> dict:
    with services.session() as session:
        entry = session.get(AuditEntry, entry_id)
        f = session.get(Fulfilment, entry.target_id)
        made = dict(entry.after["makeGood"])
        player, namespace, transaction, actor, reason = (f.player_id, f.namespace, f.transaction_id, entry.actor,
                                                         entry.reason)
    kraty_key = f"kraty-bridge:make-good:{entry_id}"
    try:
        data = services.kraty(namespace).make_good(player, made["contents"], key=kraty_key,
                                                   reason=f"make good for {transaction}: {reason}")
    except KratyError as exc:
        made.update(status="pending" if exc.transient else "failed", error=str(exc), errorCode=exc.code)
        _finish_make_good(services, entry_id, made, None)
        if exc.transient:
            raise OpsError(503, "kraty_unavailable", f"Kraty could not be reached: {exc}; send the same request "
                                                     "(same idempotency key) again", {"auditId": entry_id}) from None
        raise _kraty_refused(str(exc), entry_id) from None
    made.update(status="granted", grantId=data.get("grantId"), ledgerEntryId=data.get("ledgerEntryId"),
                kratyKey=kraty_key)
    made.pop("error", None)
    made.pop("errorCode", None)
    note = {"action": "make_good", "reason": reason, "contents": made["contents"], "grant": data.get("grantId"),
            "ledger_entry": data.get("ledgerEntryId"), "audit": entry_id}
    entry = _finish_make_good(services, entry_id, made, (actor, note))
    return answer(entry, replayed=replayed)


def finish_entry(services: Services, entry_id: int, change, busy: str) -> AuditEntry:
    """``change(session, order, entry)`` applied to the audit entry ``entry_id`` and its order in one
    transaction; read again and retried when an attempt changed the order meanwhile (optimistic lock), 409
    ``busy`` after five tries. The entry is returned detached."""
    for _ in range(5):
        with services.session() as session:
            entry = session.get(AuditEntry, entry_id)
            change(session, repo.load(session, entry.target_id), entry)
            try:
                session.commit()
            except StaleDataError:
                session.rollback()
                continue
            session.refresh(entry)
            session.expunge(entry)
            return entry
    raise OpsError(409, "busy", busy)


def _finish_make_good(services: Services, entry_id: int, made: dict, history: tuple[str, dict] | None):
    def change(session, f, entry):
        if history is not None:
            repo.note(f, history[0], history[1])
        entry.after = {**snapshot(f), "request": entry.after["request"], "makeGood": made}
    return finish_entry(services, entry_id, change,
                        "the order kept changing; the grant is made, its note is not: try again")
