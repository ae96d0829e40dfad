"""Recording a verified store event: the one path a live webhook and a backfill share.

The row is unique per (source, provider event id) — the store's own event id — so an event seen by
the webhook and again by the backfill (or twice by either) is recorded once and acted on once.
"""
from __future__ import annotations

import logging

from mappers import app_store as apple

from middleware.ledger import repository as repo
from middleware.metrics import recorders as metrics
from middleware.services import Services
from middleware.metrics import tracing

log = logging.getLogger(__name__)

JSON = "application/json"
CONSUMPTION_REQUEST = "CONSUMPTION_REQUEST"  # Apple asks for consumption information: answered by a job


class UnreadableEvent(ValueError):
    """A verified event the bridge cannot act on (missing ids, a kind that needs a nested object)."""


def record_event(svc: Services, *, source: str, provider_event_id: str, namespace: str, raw_body: bytes,
                 outcome: str, event_type: str, detail: str | None, content_type: str | None = JSON) -> int | None:
    """Commit the event (outcome ``pending``: with its job in the outbox, for a worker to act on) and count it.
    Its row id, or None when it was already recorded. Redis plays no part: the outbox's relay enqueues the job."""
    event_id = repo.insert_event(svc.engine, source=source, provider_event_id=provider_event_id, namespace=namespace,
                                 content_type=content_type, raw_body=raw_body, outcome=outcome,
                                 event_type=event_type, detail=detail, trace=tracing.job_trace())
    metrics.ingested(source, event_id, outcome)  # kb_ingested_events_total
    return event_id


def app_store_outcome(verified) -> tuple[str, str, str, str | None]:
    """(notificationType, notificationUUID, outcome, detail) of a verified notification, or UnreadableEvent."""
    notification = verified.notification
    kind, uuid = notification.get("notificationType"), notification.get("notificationUUID")
    if not isinstance(kind, str) or not isinstance(uuid, str) or not 0 < len(uuid) <= 128:
        raise UnreadableEvent("the notification has no notificationType / notificationUUID")
    acts = apple.acts(kind, notification.get("subtype")) or kind == CONSUMPTION_REQUEST
    if acts and verified.transaction is None:
        raise UnreadableEvent(f"a {kind} notification carries data.signedTransactionInfo")
    detail = None if acts else ("TEST notification: nothing changes" if kind == apple.TEST else f"{kind}: recorded")
    return kind, uuid, "pending" if acts else "ignored", detail
