"""An AccelByte-compatible answer only for a settled order.

AccelByte clients read ``FULFILL_FAILED`` / ``REVOKE_FAILED`` as final ("nothing more happens unless
retry is called"), and the API has no state for "Kraty is briefly down, retrying". So an order still
owed work (RECEIVED, FULFILLING, REVOKING: a retry is scheduled) is retried inline for up to
``KB_PUT_SETTLE_SECONDS``; if it is still not settled then, the request answers 503 with an
``ErrorEntity`` and ``Retry-After`` (the work goes on in the background), which an AccelByte client
treats as an error to repeat, never as a result. The repeated request answers the settled state.
"""
from __future__ import annotations

import math
import time

from flask import g

from middleware.orders import retry

from middleware.orders import attempts
from middleware.ledger import states
from middleware.ledger.models import Fulfilment, utcnow
from middleware.services import Services

from middleware.api.errors import UNAVAILABLE, ApiError

NOT_SETTLED = UNAVAILABLE  # 20000 at 503, like "the database is down": repeat after Retry-After
BUSY_POLL_SECONDS = 0.02  # another process holds the order's lease: look again after this


class NotSettled(ApiError):
    """503: the order is still being worked on; the same request, repeated, answers its settled state."""

    def __init__(self, transaction_ids: list[str], reason: str | None, retry_after: int):
        names = ", ".join(transaction_ids)
        message = (f"Fulfillment with transactionId [{names}] is not settled yet"
                   f"{f' ({reason})' if reason else ''}: nothing has failed, kraty-bridge goes on in the background; "
                   f"repeat the same request after {retry_after} s to read the result")
        super().__init__(503, NOT_SETTLED, message, {"transactionId": names, "retryAfter": str(retry_after)},
                         headers={"Retry-After": str(retry_after)})
        self.transaction_ids, self.reason, self.retry_after = transaction_ids, reason, retry_after


def _retry_after(f: Fulfilment, settings) -> int:
    """Whole seconds until the scheduled retry (1 at least, never more than the backoff cap)."""
    if f.next_attempt_at is None:
        return 1
    seconds = (f.next_attempt_at - utcnow()).total_seconds()
    return int(min(max(1, math.ceil(seconds)), max(1, math.ceil(settings.retry_max_delay_seconds))))


def not_settled(svc: Services, f: Fulfilment) -> NotSettled:
    return NotSettled([f.transaction_id], f.reason, _retry_after(f, svc.settings))


def settle(svc: Services, fulfilment_id: str, actor: str) -> None:
    """Retry the order inline (bounded by ``put_settle_seconds`` per request) until it is settled; else raise
    NotSettled.

    Each inline attempt waits for the order's scheduled retry time (the engine's backoff, Kraty's
    Retry-After) and takes the order's lease like any worker, so it never races the background job.
    """
    # one budget per request: a bulk request shares it between its entries
    deadline = g.setdefault("settle_deadline", time.monotonic() + svc.settings.put_settle_seconds)
    while True:
        with svc.session() as session:
            f = session.get(Fulfilment, fulfilment_id)
            if f.state not in states.ACTIVE:
                return
            due = f.next_attempt_at
            wait = BUSY_POLL_SECONDS if due is None else max(0.0, (due - utcnow()).total_seconds())
            if time.monotonic() + wait >= deadline:
                raise not_settled(svc, f)
            state = f.state
        time.sleep(wait)
        attempt = attempts.attempt_revoke if state == states.REVOKING else attempts.attempt_fulfil
        outcome = attempt(svc, fulfilment_id, actor)
        if outcome.ran:
            retry.schedule(svc, fulfilment_id, outcome)
