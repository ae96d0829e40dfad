"""Refunds the studio asked a store for (``ops.refunds``): noted on the order, and what the normal reversal path
does differently for them.

A refund asked from the console, the ops API or the CLI is noted in the order's history by ``ops.refunds``
(``action: refund``, the store's refund id, the audit entry) and, for Stripe, its Refund id becomes one of
the order's ``payment_refs``. The goods are NOT taken back here: the store's confirmation (the synchronous Refund already
``succeeded``, or ``charge.refunded`` / ``refund.updated``, or Google's voided purchase) is recorded as the
same reversal the store's own event makes — one key per store refund — so it takes effect once, whichever
arrives first. Two things differ for an asked refund:

- it failed or was canceled before taking anything: the order is flagged (someone asked for money back that
  the customer did not get);
- a Google Play refund asked *without revoking*: its voided purchase takes nothing back.
"""
from __future__ import annotations

from middleware.ledger.models import Fulfilment, Reversal

ASKED = "refund"  # the history note's ``action`` (written by ``ops.refunds``)


def asked(f: Fulfilment, store: str, **match) -> dict | None:
    """The history note of the refund the studio asked for that matches ``match`` (e.g. ``refund=re_...``)."""
    for entry in f.history:
        detail = entry.detail or {}
        if detail.get("action") == ASKED and detail.get("store") == store and all(
                detail.get(k) == v for k, v in match.items()):
            return detail
    return None


def failed_attention(f: Fulfilment, r: Reversal) -> str | None:
    """A Stripe refund the studio asked for failed or was canceled before it took anything: the attention to
    flag the order with (the goods stay). None for a refund nobody asked through the bridge."""
    refund_id = (r.detail or {}).get("refund")
    note = asked(f, "stripe", refund=refund_id) if refund_id else None
    if note is None:
        return None
    why = (r.detail or {}).get("failure_reason") or "no reason given"
    return (f"refund {refund_id} (asked by {note.get('by')}, audit {note.get('audit')}) "
            f"{(r.detail or {}).get('status') or 'failed'} ({why}): the customer got no money back and the goods "
            "stay; refund again or tell the customer")


def kept_goods(f: Fulfilment, r: Reversal) -> str | None:
    """A Google Play refund asked without revoking: the outcome that takes nothing back, else None."""
    if r.source != "google_play":
        return None
    order_id = (r.detail or {}).get("order_id")
    note = asked(f, "google_play", order=order_id, revoke=False) if order_id else None
    if note is None:
        return None
    return f"ignored: refunded without revoking (asked by {note.get('by')}, audit {note.get('audit')})"
