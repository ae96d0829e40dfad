"""What a refund or dispute does to its order, by the status the store gave it — the caller holds the lease.

Every take-back records what the order's rows had lost before it (``detail.before``) and that it
took something (``detail.revoked``); whatever later says the money stayed with the studio (a refund
that failed or was canceled, a dispute won, an inquiry closed, a dispute prevented) gives exactly that
back, once (``detail.given_back``), in a new cycle with new Kraty keys. One refund or dispute is the
group of rows whose keys share ``<refund|dispute>:<store id>:``; each phase is one row (unique key), so
events that arrive out of order or twice change nothing more.

Outcomes: a text starting with ``ignored``, ``nothing`` or ``already`` leaves the row ``ignored``; None
leaves it pending (the order is not ready: tried again when the order's attempt is over).
"""
from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from mappers import stripe_reversals as sr

from middleware.orders import refund_requests
from middleware.orders.changes import apply_partial_revoke, apply_regrant, apply_revoke, revoked_amounts
from middleware.ledger import repository as repo
from middleware.ledger import states
from middleware.ledger.models import Fulfilment, Reversal

PENDING, APPLIED, IGNORED = "pending", "applied", "ignored"
UNTRACED = "untraced"  # pending, no order found for its payment after KB_UNTRACED_REVERSAL_SECONDS: flagged for ops
PHASES = ("taken", "failed") + sr.DISPUTE_KEY_PHASES
ATTENTION_WAITING = ("dispute opened", "card inquiry")
TAKING = (states.RECEIVED, states.FULFILLING, states.FULFILLED, states.REVOKING)


def flag(f: Fulfilment, actor: str, attention: str, detail: dict) -> str:
    f.attention = attention
    repo.note(f, actor, {**detail, "attention": attention})
    return "flagged for review"


def _group(session: Session, r: Reversal) -> list[Reversal]:
    """The other rows of the same refund or dispute (exact keys: the unique index finds them)."""
    group = r.reversal_key.rsplit(":", 1)[0] + ":"
    return list(session.scalars(select(Reversal).where(
        Reversal.source == r.source, Reversal.reversal_key.in_([group + phase for phase in PHASES]),
        Reversal.id != r.id)))


def _in_effect(row: Reversal) -> bool:
    detail = row.detail or {}
    return row.state == APPLIED and bool(detail.get("revoked")) and not detail.get("given_back")


def _total(f: Fulfilment, r: Reversal) -> int | None:
    """What was paid: the charge's amount when the store said it, else the order's recorded price."""
    return r.total if r.total is not None else sr.minor_units(f.price, f.currency)


def take_back(f: Fulfilment, r: Reversal, rules, actor: str, noun: str, amount: int | None,
              unknown_is_all: bool = False) -> str | None:
    """Take back ``amount`` (cumulative) of what was paid: all of it when it covers the total, else per the
    partial-refund policy (``flag`` or ``proportional``). ``unknown_is_all``: a store that names no amount
    (App Store, Google Play revocations) takes back everything; a Stripe amount against an unknown total
    is flagged instead."""
    total = r.total if unknown_is_all else _total(f, r)
    said = (r.detail or {}).get("summary")  # what the store said, where amounts alone would mislead (App Store)
    what = said or f"{r.source} {noun} of {amount} of {total} {r.currency or ''}".rstrip()
    before = revoked_amounts(f)
    if (total is None or amount is None) and not unknown_is_all:
        return flag(f, actor, f"{noun}: {amount} of an unknown total {r.currency or ''}; review what to take back",
                    {"reversal": r.reversal_key})
    if total is None or amount is None or amount >= total:
        if not apply_revoke(f, actor, what):
            return "already revoked"
        r.detail = {**(r.detail or {}), "revoked": True, "before": before}
        return "revoked"
    if f.state in (states.REVOKED, states.REVOKE_FAILED):
        return f"nothing to do: the order is {f.state}"
    if rules.partial_refunds == "proportional" and f.state in TAKING:
        result = apply_partial_revoke(f, actor, amount, total, what)
        if result == "deferred":
            return None
        if result in ("reduced", "revoking"):
            r.detail = {**(r.detail or {}), "revoked": True, "before": before}
        return f"partial take-back: {result}"
    said = said or f"{amount} of {total} {r.currency or ''}"
    return flag(f, actor, f"partial {noun}: {said} (policy {rules.partial_refunds}, order {f.state}); "
                          "review what to take back", {"reversal": r.reversal_key})


def give_back(f: Fulfilment, r: Reversal, took: Reversal, actor: str, why: str, still_taken: int) -> str | None:
    """Give back what ``took`` took, once. ``still_taken``: what refunds applied after it still hold back
    (then its ``before`` would not be the whole truth: flagged for ops)."""
    if f.state == states.REVOKING:
        return None  # the take-back is still settling: give back once it has
    took.detail = {**(took.detail or {}), "given_back": r.reversal_key}
    if f.state == states.REVOKED and still_taken == 0:
        apply_regrant(f, actor, took.detail.get("before") or {}, f"{r.source} {why}")
        return "given back"
    return flag(f, actor, f"{why}, but the order is {f.state}" + (f" and {still_taken} is still refunded"
                                                                  if still_taken else "")
                + f": give back what {took.reversal_key} took by hand", {"reversal": r.reversal_key})


# ---------------------------------------------------------------- refunds
def _refunded_elsewhere(session: Session, f: Fulfilment, r: Reversal) -> int:
    """What the order's other refunds add up to (each Stripe Refund is one row; a given-back one is out)."""
    rows = session.scalars(select(Reversal).where(Reversal.fulfilment_id == f.id, Reversal.kind == sr.REFUND,
                                                  Reversal.state == APPLIED, Reversal.id != r.id))
    return sum(row.amount or 0 for row in rows
               if row.reversal_key.endswith(":taken") and not (row.detail or {}).get("given_back"))


def refund(session: Session, f: Fulfilment, r: Reversal, rules, actor: str) -> str | None:
    """A refund in effect. A row keyed ``refund:<re>:taken`` is one Refund (its own amount); an older
    row keyed by the charge's cumulative ``amount_refunded`` carries that total."""
    if not r.reversal_key.endswith(":taken"):
        return refund_requests.kept_goods(f, r) or take_back(f, r, rules, actor, "refund", r.amount,
                                                             unknown_is_all=True)
    if any(s.kind == sr.REFUND_FAILED for s in _group(session, r)):
        return "ignored: the refund failed or was canceled before it took effect"
    return take_back(f, r, rules, actor, "refund", (r.amount or 0) + _refunded_elsewhere(session, f, r))


def refund_failed(session: Session, f: Fulfilment, r: Reversal, rules, actor: str) -> str | None:
    """A refund failed or was canceled: the studio kept the money, so what it took is owed again."""
    took = next((s for s in _group(session, r) if s.kind == sr.REFUND), None)
    if took is not None and took.state == PENDING:
        return None  # its take-back is not applied yet (the order was not ready): settle that first
    if took is None or not _in_effect(took):
        attention = refund_requests.failed_attention(f, r)
        if attention is not None:  # asked from the console: someone expects the money to be back
            return flag(f, actor, attention, {"reversal": r.reversal_key})
        return "nothing to give back: the refund took nothing"
    status = (r.detail or {}).get("status") or "failed"
    # what refunds applied before it took is in its ``before`` (kept); a later one's take-back is not
    later = session.scalars(select(Reversal).where(Reversal.fulfilment_id == f.id, Reversal.kind == sr.REFUND,
                                                   Reversal.id > took.id, Reversal.id != r.id))
    return give_back(f, r, took, actor, f"refund {took.reversal_key.split(':')[1]} {status}",
                     sum(row.amount or 0 for row in later if _in_effect(row)))


# ---------------------------------------------------------------- disputes
def _settled_attention(f: Fulfilment) -> None:
    if f.attention and f.attention.startswith(ATTENTION_WAITING):
        f.attention = None


def dispute(session: Session, f: Fulfilment, r: Reversal, rules, actor: str) -> str | None:
    """One phase of a dispute: inquiry, opened (a chargeback), lost, or closed in the studio's favour."""
    group = _group(session, r)
    closed = any(s.kind in (sr.DISPUTE_WON, sr.DISPUTE_LOST) for s in group)
    took = next((s for s in group if _in_effect(s)), None)
    amount = r.amount if r.amount is not None else _total(f, r)
    if r.kind == sr.DISPUTE_INQUIRY:
        if closed or any(s.kind == sr.DISPUTE_OPENED for s in group):
            return "ignored: the dispute has already moved past the inquiry"
        if rules.inquiries == "revoke":
            return take_back(f, r, rules, actor, "card inquiry", amount)
        return flag(f, actor, "card inquiry opened: nothing taken back (policy inquiries flag); no funds were "
                              "withdrawn, answer it in Stripe", {"reversal": r.reversal_key})
    if r.kind == sr.DISPUTE_OPENED:
        if closed:
            return "ignored: the dispute is already closed"
        if took is not None:
            return "already taken back when the inquiry opened"
        if rules.disputes == "revoke_on_open":
            _settled_attention(f)
            return take_back(f, r, rules, actor, "dispute", amount)
        return flag(f, actor, "dispute opened: waiting for its outcome (policy revoke_when_lost)",
                    {"reversal": r.reversal_key})
    _settled_attention(f)
    if r.kind == sr.DISPUTE_LOST:
        if took is not None:
            return "already taken back when the dispute opened"
        return take_back(f, r, rules, actor, "dispute lost", amount)
    if took is None:  # won, warning_closed, prevented
        return "nothing to give back: the dispute took nothing"
    return give_back(f, r, took, actor, f"dispute {(r.detail or {}).get('status') or 'won'}", 0)
