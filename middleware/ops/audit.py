"""The audit log: the one writer of audit rows (always in the transaction of the change it records) and its list."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from middleware.ledger.models import (
    AuditEntry,
    Fulfilment,
    utcnow,
)
from middleware.ops.base import Actor, OpsError, iso
from middleware.ops.filters import check_page, filters


# -- audit --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class AuditQuery:
    target_type: str | None = None
    target_id: str | None = None
    actor: str | None = None
    action: str | None = None
    namespace: str | None = None
    after: datetime | None = None    # inclusive
    before: datetime | None = None   # exclusive

    def as_filters(self) -> dict:
        return {"targetType": self.target_type, "targetId": self.target_id, "actor": self.actor,
                "action": self.action, "namespace": self.namespace, "after": iso(self.after),
                "before": iso(self.before)}


def audit_view(entry: AuditEntry) -> dict:
    return {"id": entry.id, "at": iso(entry.at), "actor": entry.actor, "role": entry.role, "action": entry.action,
            "targetType": entry.target_type, "targetId": entry.target_id, "namespace": entry.namespace,
            "reason": entry.reason, "before": entry.before, "after": entry.after, "requestId": entry.request_id}


def list_audit(session: Session, actor: Actor, query: AuditQuery, limit: int = 50,
               after_id: int | None = None) -> tuple[list[dict], int | None]:
    """One page of the audit log, newest first (by entry id), after the entry ``after_id``. A key limited to
    some games sees only their entries."""
    check_page(actor, limit, query.namespace)
    a = AuditEntry
    stmt = select(a).where(*filters(
        actor, a.namespace, ((a.target_type, query.target_type), (a.target_id, query.target_id),
                             (a.actor, query.actor), (a.action, query.action), (a.namespace, query.namespace)),
        a.at, query.after, query.before))
    if after_id is not None:
        stmt = stmt.where(a.id < after_id)
    rows = list(session.scalars(stmt.order_by(a.id.desc()).limit(limit + 1)))
    more = len(rows) > limit
    rows = rows[:limit]
    return [audit_view(row) for row in rows], (rows[-1].id if more else None)



def audit_row(actor: Actor, action: str, target: Fulfilment | tuple[str, str], reason: str, before: dict | None,
              after: dict, stored_key: str | None = None) -> AuditEntry:
    """The one audit writer: the row recording ``actor``'s ``action`` on ``target`` (an order, or a
    ``(target type, id)`` such as ``("sink", name)``), for the caller to add to the session of the change it
    records, so both commit or neither does."""
    if isinstance(target, Fulfilment):
        target_type, target_id, namespace = "fulfilment", target.id, target.namespace
    else:
        (target_type, target_id), namespace = target, None
    return AuditEntry(at=utcnow(), actor=actor.name, role=actor.role or "cli", action=action,
                      target_type=target_type, target_id=target_id, namespace=namespace, reason=reason,
                      before=before, after=after, request_id=actor.request_id, idempotency_key=stored_key)


def note_row(actor: Actor, target_type: str, target_id: str, namespace: str | None, text: str,
             stored_key: str | None) -> AuditEntry:
    """A note on an order or a player (``action`` "note", the note as the reason): kept as an audit entry."""
    return AuditEntry(at=utcnow(), actor=actor.name, role=actor.role or "cli", action="note",
                      target_type=target_type, target_id=target_id, namespace=namespace, reason=text,
                      before=None, after=None, request_id=actor.request_id, idempotency_key=stored_key)


def entry_for_key(session: Session, stored_key: str, request: dict) -> AuditEntry | None:
    """The audit entry of the action an idempotency key was first used for (None: not used yet); 422
    ``idempotency_key_reused`` when that was another request (its fingerprint differs)."""
    entry = session.scalars(select(AuditEntry).where(AuditEntry.idempotency_key == stored_key)).one_or_none()
    if entry is not None and (entry.after or {}).get("request", {}).get("fingerprint") != request["fingerprint"]:
        raise OpsError(422, "idempotency_key_reused", "this idempotency key was used for another request",
                       {"auditId": entry.id})
    return entry
