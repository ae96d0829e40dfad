"""Notes on an order or a player: what support staff want the next person to know ("customer emailed twice,
refund promised"). A note is an ops action like the others: audited (an ``audit_log`` entry, action ``note``,
the text as its reason, written by ``ops.audit.note_row``), replayed by idempotency key, never changing the
order. Any console role may note (a viewer too: a note changes nothing but the log)."""
from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from mappers.accelbyte import is_clean_id
from middleware.ledger.models import AuditEntry
from middleware.ops.audit import AuditQuery, audit_view, list_audit, note_row
from middleware.ops.base import MAX_IDEMPOTENCY_KEY, Actor, OpsError
from middleware.ops.queries import _visible
from middleware.services import Services

NOTE = "note"
MAX_NOTE = 2000
TARGETS = ("fulfilment", "player")


def _checked(text: str | None, idempotency_key: str | None) -> str:
    text = (text or "").strip()
    if not 1 <= len(text) <= MAX_NOTE:
        raise OpsError(422, "validation_failed", f"a note is 1-{MAX_NOTE} characters",
                       {"fields": {"note": [f"1-{MAX_NOTE} characters"]}})
    if idempotency_key is not None and not 1 <= len(idempotency_key) <= MAX_IDEMPOTENCY_KEY:
        raise OpsError(422, "validation_failed", f"the idempotency key is 1-{MAX_IDEMPOTENCY_KEY} characters",
                       {"fields": {"idempotencyKey": [f"1-{MAX_IDEMPOTENCY_KEY} characters"]}})
    return text


def _same(entry: AuditEntry, target_type: str, target_id: str, text: str) -> dict:
    if (entry.action, entry.target_type, entry.target_id, entry.reason) != (NOTE, target_type, target_id, text):
        raise OpsError(422, "idempotency_key_reused", "this idempotency key was used for another request",
                       {"auditId": entry.id})
    return {**audit_view(entry), "replayed": True}


def add_note(services: Services, actor: Actor, target_type: str, target_id: str, text: str | None, *,
             namespace: str | None = None, idempotency_key: str | None = None) -> dict:
    """Note ``text`` on an order (``target_id``: its id) or a player (``namespace`` and the player id).
    Answers the audit entry; the same idempotency key (per actor) answers the first note again."""
    text = _checked(text, idempotency_key)
    stored_key = f"{actor.name}|{idempotency_key}" if idempotency_key is not None else None
    key_id = player_target(namespace or "", target_id) if target_type == "player" else target_id
    with services.session() as session:
        if stored_key is not None:
            entry = session.scalars(select(AuditEntry).where(AuditEntry.idempotency_key == stored_key)).one_or_none()
            if entry is not None:
                return _same(entry, target_type, key_id, text)
        if target_type == "fulfilment":
            namespace = _visible(session, actor, target_id).namespace
        elif target_type == "player":
            if namespace is None or services.catalog.game(namespace) is None:
                raise OpsError(422, "validation_failed", f"unknown namespace {namespace}",
                               {"fields": {"namespace": ["not a game of the catalog"]}})
            if not actor.sees(namespace):
                raise OpsError(403, "forbidden", f"this key may not see namespace {namespace}")
            if not is_clean_id(target_id):
                raise OpsError(422, "validation_failed", "a player id is 1-128 printable characters without spaces",
                               {"fields": {"playerId": ["1-128 printable characters without spaces"]}})
        else:
            raise OpsError(422, "validation_failed", f"notes are on one of {', '.join(TARGETS)}",
                           {"fields": {"targetType": list(TARGETS)}})
        entry = note_row(actor, target_type, key_id, namespace, text, stored_key)
        session.add(entry)
        try:
            session.commit()
        except IntegrityError:   # the same key, concurrently: the other note
            session.rollback()
            return _same(session.scalars(select(AuditEntry).where(AuditEntry.idempotency_key == stored_key)).one(),
                         target_type, key_id, text)
        return audit_view(entry)


def player_target(namespace: str, player_id: str) -> str:
    """A player's notes are kept under ``<namespace>/<player id>`` (one player per game)."""
    return f"{namespace}/{player_id}"


def notes_on(session, actor: Actor, target_type: str, target_id: str, limit: int = 50) -> list[dict]:
    """The notes on an order or a player (``player_target``), newest first."""
    rows, _ = list_audit(session, actor, AuditQuery(target_type=target_type, target_id=target_id, action=NOTE), limit)
    return rows
