"""Players' data: erasure after Kraty's ``player.deleted`` (GDPR), the move after ``player.merged``, and the
export of everything the bridge holds on a player.

Erasure replaces the player's id with an anonymous placeholder (``__deleted_<uuid>__``, Kraty's own form)
in orders, their history, receipt links, stored raw bodies, outbound events and sequence counters, and
drops personal fields (names, e-mail addresses, postal addresses, phone numbers...) from the stored raw
bodies; transaction ids, SKUs, amounts and states stay, as Kraty keeps its ledgers. Deliveries still
waiting for that player are cancelled; the deletion itself goes to every sink (it has to name the player
for the sink to find them), and its own copy is anonymised once every sink has it
(``scrub_delivered_deletions``, run by the reconciler).
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import json
import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, delete, or_, select, update
from sqlalchemy.orm import Session

from middleware import ops
from middleware.ledger import states
from middleware.ledger.models import (AuditEntry, Delivery, Erasure, Fulfilment, HistoryEntry, InboundEvent, OutboundEvent,
                            PlayerLink, PlayerSequence, Reversal, utcnow)
from middleware.sinks.states import ACTIVE as DELIVERY_ACTIVE
from middleware.sinks.states import CANCELLED, DEAD, DISABLED

PERSONAL_KEYS = frozenset({
    "email", "email_address", "emailaddress", "customer_email", "receipt_email", "name", "customer_name",
    "given_name", "givenname", "family_name", "familyname", "profile_name", "profilename", "phone",
    "phone_number", "customer_phone", "address", "billing_address", "shipping_address", "shipping",
    "shipping_details", "billing_details", "customer_details", "ip", "ip_address", "ipaddress", "tax_ids",
})
ERASED_ORDER = "player_erased"
MERGE_ACTOR = "kraty"


def placeholder() -> str:
    return f"__deleted_{uuid.uuid4().hex}__"


def player_hash(namespace: str, player_id: str) -> str:
    return hashlib.sha256(f"{namespace}\n{player_id}".encode()).hexdigest()


# ---------------------------------------------------------------- scrubbing stored bodies
def _decoded(text: str):
    """A JWS's payload or a base64 JSON document (Pub/Sub ``data``) as JSON, else None."""
    parts = text.split(".")
    candidates = [parts[1]] if len(parts) == 3 and len(text) > 40 else [text] if len(text) >= 8 else []
    for part in candidates:
        try:
            raw = base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))
            value = json.loads(raw)
        except (binascii.Error, ValueError):
            continue
        if isinstance(value, (dict, list)):
            return value
    return None


def scrub(value, player_id: str, replacement: str):
    """``value`` (JSON) with ``player_id`` replaced wherever it is a whole string, personal fields dropped,
    and signed or encoded documents (a JWS, base64 JSON) replaced by their scrubbed content."""
    if isinstance(value, dict):
        return {key: scrub(item, player_id, replacement) for key, item in value.items()
                if key.lower() not in PERSONAL_KEYS}
    if isinstance(value, list):
        return [scrub(item, player_id, replacement) for item in value]
    if isinstance(value, str):
        if value == player_id:
            return replacement
        inner = _decoded(value) if len(value) >= 8 else None
        if inner is not None:
            return {"_decoded": scrub(inner, player_id, replacement)}
    return value


def scrub_body(raw: bytes, player_id: str, replacement: str) -> bytes:
    """A stored raw body, scrubbed (the signature it came with no longer applies, and that is the point)."""
    try:
        body = json.loads(raw)
    except ValueError:
        return json.dumps({"_erased": True, "note": "not JSON: dropped on erasure"}).encode()
    scrubbed = scrub(body, player_id, replacement)
    if isinstance(scrubbed, dict):
        scrubbed = {**scrubbed, "_erased": True}
    return json.dumps(scrubbed, separators=(",", ":")).encode()


# ---------------------------------------------------------------- erasure
@dataclass
class Erased:
    placeholder: str
    counts: dict


def erase(session: Session, namespace: str, player_id: str, *, kraty_player_id: str | None = None,
          keep_event: str | None = None, actor: str = "kraty", now: datetime | None = None) -> Erased:
    """Erase ``player_id`` of ``namespace`` in the caller's transaction (the caller commits).

    ``keep_event``: the outbound event that carries the deletion to the sinks (left as it is: it must name
    the player; ``scrub_delivered_deletions`` anonymises it once delivered).
    """
    now = now or utcnow()
    anon = placeholder()
    counts: dict[str, int] = {}
    orders = session.scalars(select(Fulfilment).where(Fulfilment.namespace == namespace,
                                                      Fulfilment.player_id == player_id)).all()
    order_ids = [f.id for f in orders]
    for f in orders:
        f.player_id = anon
        f.lines = scrub(f.lines, player_id, anon)
        for entry in f.history:
            if entry.detail:
                entry.detail = scrub(entry.detail, player_id, anon)
        detail = {"event": "player_erased", "placeholder": anon}
        if f.state in (states.RECEIVED, states.FULFILLING) or (
                f.state == states.FULFILL_FAILED and not any(i.state == states.ITEM_GRANTED for i in f.items)):
            # nobody to grant to any more: stop, and tell ops the buyer is owed a refund in the store
            if f.state != states.FULFILL_FAILED:
                f.history.append(HistoryEntry(at=now, actor=actor, from_state=f.state, to_state=states.FULFILL_FAILED,
                                              detail=detail))
                f.state, f.state_changed_at = states.FULFILL_FAILED, now
            f.reason, f.next_attempt_at = ERASED_ORDER, None
            f.attention = "the player was erased (GDPR) before this order was granted: refund the buyer in the store"
            detail = None
        if detail:
            f.history.append(HistoryEntry(at=now, actor=actor, from_state=None, to_state=None, detail=detail))
        f.updated_at = now
    counts["fulfilments"] = len(orders)
    counts["links"] = session.execute(update(PlayerLink).where(PlayerLink.namespace == namespace,
                                                               PlayerLink.player_id == player_id)
                                      .values(player_id=anon)).rowcount
    if order_ids:
        for reversal in session.scalars(select(Reversal).where(Reversal.fulfilment_id.in_(order_ids))):
            reversal.detail = scrub(reversal.detail, player_id, anon) if reversal.detail else reversal.detail
    events = session.scalars(select(InboundEvent).where(
        or_(InboundEvent.fulfilment_id.in_(order_ids) if order_ids else False,
            and_(InboundEvent.namespace == namespace, InboundEvent.player_id == player_id)))).all()
    for event in events:
        event.raw_body = scrub_body(event.raw_body, player_id, anon)
        if event.player_id == player_id:
            event.player_id = anon
    counts["inbound_events"] = len(events)
    counts.update(_erase_outbound(session, namespace, player_id, anon, keep_event, now))
    counts["audit_entries"] = session.execute(
        update(AuditEntry).where(AuditEntry.target_type == "player", AuditEntry.target_id == player_id,
                                 or_(AuditEntry.namespace == namespace, AuditEntry.namespace.is_(None)))
        .values(target_id=anon)).rowcount
    session.add(Erasure(namespace=namespace, player_sha256=player_hash(namespace, player_id), placeholder=anon,
                        kraty_player_id=kraty_player_id, counts=counts, erased_at=now))
    session.flush()
    return Erased(anon, counts)


def _erase_outbound(session: Session, namespace: str, player_id: str, anon: str, keep_event: str | None,
                    now: datetime) -> dict[str, int]:
    where = [OutboundEvent.namespace == namespace, OutboundEvent.player_id == player_id]
    if keep_event is not None:
        where.append(OutboundEvent.id != keep_event)
    events = session.scalars(select(OutboundEvent).where(*where)).all()
    for event in events:
        event.player_id = anon
        event.payload = scrub(event.payload, player_id, anon)
    ids = [event.id for event in events]
    cancelled = session.execute(
        update(Delivery).where(Delivery.event_id.in_(ids), Delivery.state.in_((*DELIVERY_ACTIVE, DEAD, DISABLED)))
        .values(state=CANCELLED, next_attempt_at=None, updated_at=now, last_error="the player was erased")
    ).rowcount if ids else 0
    last = session.execute(select(PlayerSequence.last_seq).where(PlayerSequence.namespace == namespace,
                                                                 PlayerSequence.player_id == player_id)).scalar()
    if last is not None:
        session.execute(delete(PlayerSequence).where(PlayerSequence.namespace == namespace,
                                                     PlayerSequence.player_id == player_id))
        session.add(PlayerSequence(namespace=namespace, player_id=anon, last_seq=last))
    return {"outbound_events": len(events), "deliveries_cancelled": cancelled}


def scrub_delivered_deletions(session: Session, limit: int = 500) -> int:
    """Anonymise ``player.deleted`` events that every sink has received (or will never receive). The caller
    commits. Returns how many."""
    pending = select(Delivery.event_id).where(Delivery.state.in_((*DELIVERY_ACTIVE, DEAD, DISABLED)))
    events = session.scalars(select(OutboundEvent).where(
        OutboundEvent.type == "player.deleted", OutboundEvent.player_id.not_like("\\_\\_deleted\\_%", escape="\\"),
        OutboundEvent.id.not_in(pending)).limit(limit)).all()
    for event in events:
        erasure = session.scalars(select(Erasure).where(
            Erasure.namespace == event.namespace,
            Erasure.player_sha256 == player_hash(event.namespace, event.player_id or ""))
            .order_by(Erasure.id.desc())).first()
        anon = erasure.placeholder if erasure is not None else placeholder()
        event.payload = scrub(event.payload, event.player_id or "", anon)
        event.player_id = anon
    return len(events)


# ---------------------------------------------------------------- merge
def merge(session: Session, namespace: str, guest: str, into: str, *, actor: str = MERGE_ACTOR,
          now: datetime | None = None) -> dict[str, int]:
    """Move the guest's orders (held ones too), receipt links and their history to ``into``, each order with
    a history entry. The caller commits. Returns the counts."""
    now = now or utcnow()
    orders = session.scalars(select(Fulfilment).where(Fulfilment.namespace == namespace,
                                                      Fulfilment.player_id == guest)).all()
    for f in orders:
        f.player_id = into
        f.updated_at = now
        f.history.append(HistoryEntry(at=now, actor=actor, from_state=None, to_state=None,
                                      detail={"event": "player_merged", "from": guest, "into": into,
                                              "state": f.state}))
    links = session.execute(update(PlayerLink).where(PlayerLink.namespace == namespace,
                                                     PlayerLink.player_id == guest)
                            .values(player_id=into)).rowcount
    return {"fulfilments": len(orders), "links": links,
            "held": sum(1 for f in orders if f.state in (*states.ACTIVE, states.FULFILL_FAILED))}


# ---------------------------------------------------------------- export
def export(session: Session, namespaces: list[str], player_id: str) -> dict:
    """Everything the bridge holds on ``player_id`` in these namespaces, as JSON."""
    orders = session.scalars(select(Fulfilment).where(Fulfilment.namespace.in_(namespaces),
                                                      Fulfilment.player_id == player_id)
                             .order_by(Fulfilment.created_at, Fulfilment.id)).all()
    order_ids = [f.id for f in orders]
    links = session.scalars(select(PlayerLink).where(PlayerLink.namespace.in_(namespaces),
                                                     PlayerLink.player_id == player_id).order_by(PlayerLink.id)).all()
    inbound = session.scalars(select(InboundEvent).where(
        or_(InboundEvent.fulfilment_id.in_(order_ids) if order_ids else False,
            and_(InboundEvent.namespace.in_(namespaces), InboundEvent.player_id == player_id)))
        .order_by(InboundEvent.id)).all()
    reversal_rows = session.scalars(select(Reversal).where(Reversal.fulfilment_id.in_(order_ids))
                                    .order_by(Reversal.id)).all() if order_ids else []
    outbound = session.scalars(select(OutboundEvent).where(OutboundEvent.namespace.in_(namespaces),
                                                           OutboundEvent.player_id == player_id)
                               .order_by(OutboundEvent.created_at, OutboundEvent.id)).all()
    deliveries = session.scalars(select(Delivery).where(Delivery.event_id.in_([e.id for e in outbound]))
                                 .order_by(Delivery.created_at)).all() if outbound else []
    by_event: dict[str, list] = {}
    for d in deliveries:
        by_event.setdefault(d.event_id, []).append(ops.delivery_view(d))
    return {
        "playerId": player_id,
        "namespaces": namespaces,
        "exportedAt": ops.iso(utcnow()),
        "fulfilments": [{**ops.summary(f), "lines": f.lines, "items": [ops.item_view(i) for i in f.items],
                         "history": [ops.history_view(h) for h in f.history]} for f in orders],
        "receiptLinks": [{"namespace": link.namespace, "store": link.source, "kind": link.kind, "value": link.value,
                          "createdAt": ops.iso(link.created_at)} for link in links],
        "refundsAndDisputes": [{"fulfilmentId": r.fulfilment_id, "store": r.source, "kind": r.kind,
                                "amount": r.amount, "total": r.total, "currency": r.currency, "state": r.state,
                                "createdAt": ops.iso(r.created_at)} for r in reversal_rows],
        "inboundEvents": [ops.event_view(e) for e in inbound],
        "outboundEvents": [{"id": e.id, "type": e.type, "namespace": e.namespace,
                            "occurredAt": ops.iso(e.occurred_at), "playerSequence": e.player_seq, "data": e.payload,
                            "deliveries": by_event.get(e.id, [])} for e in outbound],
    }
