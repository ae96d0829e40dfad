"""The jobs port: what the domain asks of the queue, and the queues' names.

The domain never imports ``workers``: it is handed ``svc.jobs`` (``Services.jobs``), an object with these
methods, built where the process is composed (``app.py``'s factory) by ``workers/queues.py`` (``RqJobs``), which
enqueues the job functions themselves on RQ. Each method enqueues one job under an id derived from its content
(``fulfil-<id>-<attempt>``): asking twice for the same attempt enqueues it once. All raise ``RedisError`` when
Redis does not answer; the caller has committed first, so the reconciler enqueues it later.
"""
from __future__ import annotations

from typing import Protocol

FULFILMENT_QUEUE = "kb-fulfilment"   # fulfil and revoke attempts, store events, follow-ups, reversals
MAINTENANCE_QUEUE = "kb-maintenance"  # the reconciler
SINK_QUEUE = "kb-sinks"               # deliveries to sinks (a slow CRM never holds up fulfilment)
# Dequeue order: the reconciler first (one short job per interval; a backlog of fulfilments must not hold up
# the pass that finds stalled work), then fulfilment, then sinks.
QUEUES = (MAINTENANCE_QUEUE, FULFILMENT_QUEUE, SINK_QUEUE)


class Jobs(Protocol):
    """The enqueue side, as the domain sees it (implemented by ``workers.queues.RqJobs``)."""

    queues: tuple[str, ...]

    def attempt(self, fulfilment_id: str, state: str, attempts: int, delay: float = 0) -> str | None:
        """The next fulfil (or, for an order in REVOKING, revoke) attempt of an order; None if already waiting."""

    def event(self, source: str, inbound_event_id: int, attempt: int = 0) -> str:
        """Handle a recorded ``source`` event (attempt 0: its first job; later ones: a re-enqueue under a new id)."""

    def followup(self, fulfilment_id: str, attempt: int, delay: float = 0) -> str | None:
        """Tell the store a granted order is granted (Google Play consume / acknowledge)."""

    def reverse(self, fulfilment_id: str, slot: int) -> str | None:
        """Apply an order's pending refunds and disputes (the reconciler, when the order was busy)."""

    def delivery(self, delivery_id: str, attempt: int, delay: float = 0, tag: str = "") -> str | None:
        """Attempt ``attempt`` of a delivery to a sink; ``tag`` tells apart jobs for the same attempt."""

    def relay_outbox(self) -> int:
        """Move the outbox's committed jobs to the queue; how many moved."""

    def move_overdue(self) -> int:
        """Put delayed jobs overdue on their queue; how many moved."""
