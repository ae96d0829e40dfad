"""Changes to an order the caller holds the lease of: retry, take back (all or part), give back.

Pure ledger edits on a loaded order — no Kraty call, no commit. The attempt that follows
(``engine``) makes the calls the new state asks for.
"""
from __future__ import annotations

from sqlalchemy.orm import object_session

from config.catalog import Game

from middleware.ledger import repository as repo
from middleware.ledger import states
from middleware.ledger.models import Fulfilment
from middleware.orders.lines import item_rows, resolve_line, revoke_target

PLAYER_UNRESOLVED = "player_unresolved"


def _reresolve_unknown_lines(f: Fulfilment, game: Game) -> None:
    """Lines that named nothing fulfillable are resolved again: the catalog may have been fixed."""
    lines = {item.line_no for item in f.items if item.kind is None}
    for line_no in sorted(lines):
        resolved = resolve_line(game, f.lines[line_no])
        if resolved.error_code:
            continue
        for old in [item for item in f.items if item.line_no == line_no]:
            f.items.remove(old)
        object_session(f).flush()  # the old rows go before the new ones take their (line, component) keys
        f.items.extend(item_rows(line_no, resolved))


def apply_retry(f: Fulfilment, actor: str, game: Game, player_id: str | None = None, reason: str = "") -> bool:
    """FULFILL_FAILED -> FULFILLING: failed items are tried again, unknown lines resolved again.

    ``player_id``: the player an operator found for an order whose player could not be resolved.
    """
    if f.state != states.FULFILL_FAILED:
        return False
    if player_id:
        f.player_id = player_id
    _reresolve_unknown_lines(f, game)
    retried = 0
    for item in f.items:
        if item.state == states.ITEM_FAILED and item.kind is not None:
            item.state, retried = states.ITEM_PENDING, retried + 1
    f.attempts = 0
    detail = {"action": "retry", "items": retried, **({"player": player_id} if player_id else {}),
              **({"reason": reason} if reason else {})}
    repo.set_state(f, states.FULFILLING, actor, detail)
    return True


def apply_retry_revoke(f: Fulfilment, actor: str, reason: str = "") -> bool:
    """REVOKE_FAILED -> REVOKING: the take-backs Kraty refused are tried again (to the same targets:
    a partial take-back stays partial)."""
    if f.state != states.REVOKE_FAILED:
        return False
    retried = 0
    for item in f.items:
        if item.state == states.ITEM_REVOKE_FAILED:
            item.state, retried = states.ITEM_GRANTED, retried + 1
    f.attempts = 0
    f.next_attempt_at = None
    detail = {"action": "retry_revoke", "items": retried, **({"reason": reason} if reason else {})}
    repo.set_state(f, states.REVOKING, actor, detail, reason=reason or None)
    return True


def apply_resolve(f: Fulfilment, actor: str, reason: str) -> bool:
    """FULFILL_FAILED / REVOKE_FAILED -> RESOLVED: an operator closes the order without granting (or taking
    back) anything more. Its rows stay as they are, for the record."""
    if f.state not in (states.FULFILL_FAILED, states.REVOKE_FAILED):
        return False
    f.attempts = 0
    f.next_attempt_at = None
    repo.set_state(f, states.RESOLVED, actor, {"action": "resolve", "reason": reason},
                   reason=f"resolved without granting: {reason}")
    return True


def apply_revoke(f: Fulfilment, actor: str, reason: str) -> bool:
    """Take back everything the order granted (never more). False if it is already taken back."""
    if f.state == states.REVOKED:
        return False
    for item in f.items:
        item.revoke_to = None  # all of it, also where a partial take-back was under way
    if f.state == states.REVOKING:
        repo.note(f, actor, {"action": "revoke", "reason": reason, "widened": "to the whole order"})
        return True
    # FAILED: Kraty refused the grant. PENDING on a RECEIVED order, or on one without a player: Kraty was
    # never called. Other PENDING items may have been granted by a call whose answer was lost: the revoke
    # attempt settles them. (An order with nothing left to settle is REVOKED by its attempt, which then
    # calls nobody.)
    nobody = never_granted_to_anyone(f)
    never_granted = [item for item in f.items if item.state == states.ITEM_FAILED
                     or (item.state == states.ITEM_PENDING and (f.state == states.RECEIVED or nobody))]
    for item in never_granted:
        item.state = states.ITEM_SKIPPED
    for item in f.items:
        if item.state == states.ITEM_REVOKE_FAILED:
            item.state = states.ITEM_GRANTED
    f.attempts = 0
    f.next_attempt_at = None
    detail = {"action": "revoke", "reason": reason, "never_granted": len(never_granted)}
    if f.state == states.RECEIVED:
        repo.set_state(f, states.REVOKED, actor, detail, reason=f"revoked before it was granted: {reason}")
    else:
        repo.set_state(f, states.REVOKING, actor, detail, reason=reason)
    return True


def never_granted_to_anyone(f: Fulfilment) -> bool:
    """The order never had a player (held as player_unresolved): Kraty was never called for it, so none of
    its rows can have been granted, whatever their state says."""
    return f.player_id is None and not any(item.state in (states.ITEM_GRANTED, states.ITEM_REVOKE_FAILED)
                                           for item in f.items)


def settle_never_granted(f: Fulfilment, actor: str) -> int:
    """An order being taken back that never had a player: its rows still waiting for a grant are marked
    never granted (no Kraty call can settle them: there is nobody to ask about). Returns how many."""
    if not never_granted_to_anyone(f):
        return 0
    rows = [item for item in f.items if item.state == states.ITEM_PENDING]
    for item in rows:
        item.state = states.ITEM_SKIPPED
    if rows:
        repo.note(f, actor, {"never_granted": len(rows), "why": "the order never had a player"})
    return len(rows)


def apply_partial_revoke(f: Fulfilment, actor: str, numerator: int, denominator: int, reason: str) -> str:
    """Take back ``numerator/denominator`` of every row, rounded down (cumulative: a later, larger
    share takes back only the difference; a smaller one changes nothing).

    Returns what happened: ``deferred`` (the lines are not known yet), ``unchanged``, ``reduced``
    (Kraty was never called: the grant will give less) or ``revoking``.
    """
    if f.lookup and not f.items:
        return "deferred"
    detail = {"action": "partial_revoke", "share": f"{numerator}/{denominator}", "reason": reason}
    if f.state == states.RECEIVED:  # nothing granted yet: grant less
        changed = False
        for item in f.items:
            share = item.amount * numerator // denominator
            if item.kind and share > item.revoked_amount:
                item.revoked_amount, changed = share, True
        if changed:
            repo.note(f, actor, detail)
        return "reduced" if changed else "unchanged"
    revoking = f.state == states.REVOKING
    targets, changed = {}, False
    for item in f.items:
        if item.kind is None or item.state not in (states.ITEM_PENDING, states.ITEM_GRANTED):
            continue
        current = revoke_target(item) if revoking else item.revoked_amount
        targets[item] = max(current, item.amount * numerator // denominator)
        changed = changed or targets[item] > current
    if not changed:
        return "unchanged"
    for item, target in targets.items():  # every row gets its target: None would mean "all of it"
        item.revoke_to = target
    f.attempts = 0
    f.next_attempt_at = None
    if f.state == states.REVOKING:
        repo.note(f, actor, detail)
    else:
        repo.set_state(f, states.REVOKING, actor, detail, reason=reason)
    return "revoking"


def revoked_amounts(f: Fulfilment) -> dict[str, int]:
    """What each row has had taken back so far: kept with a dispute's take-back, to give it back later."""
    return {str(item.id): item.revoked_amount for item in f.items}


def apply_regrant(f: Fulfilment, actor: str, before: dict[str, int], reason: str) -> bool:
    """REVOKED -> FULFILLING: give back what a take-back took (a dispute won), in a new cycle with new keys.

    ``before``: each row's revoked amount before that take-back (what earlier refunds took stays taken).
    """
    if f.state != states.REVOKED:
        return False
    f.reversal_seq += 1
    for item in f.items:
        if item.kind is None or item.state not in (states.ITEM_REVOKED, states.ITEM_SKIPPED):
            continue
        kept_back = min(before.get(str(item.id), 0), item.amount)
        if kept_back >= item.amount:
            continue
        item.cycle, item.state, item.revoked_amount, item.revoke_to = f.reversal_seq, states.ITEM_PENDING, kept_back, None
        item.kraty_entry_id = item.revoke_entry_id = item.error_code = item.error = None
    f.attempts = 0
    f.next_attempt_at = None
    repo.set_state(f, states.FULFILLING, actor, {"action": "regrant", "reason": reason, "cycle": f.reversal_seq},
                   reason=reason)
    return True
