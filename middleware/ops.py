"""Ops: find orders, look at one, fix it — the service layer of the ops API, the CLI and the console.

Everything here takes the ``Services`` (or a session) and an :class:`Actor` and answers plain dicts ready
for JSON; nothing here knows about HTTP. Problems are raised as :class:`OpsError` (a status, a code, a
message, details) which each front end shows its own way.

Actions (each needs a reason, is audited in ``audit_log`` with the order's state before and after, and
takes an optional idempotency key that replays the first answer):

=================  ========  =======================================================================
action             role      allowed when
=================  ========  =======================================================================
``retry``          operator  FULFILL_FAILED (failed rows again) or REVOKE_FAILED (take-backs again)
``revoke``         operator  something was (or may have been) granted and nothing is under way:
                             FULFILLED, FULFILL_FAILED, REVOKE_FAILED or RESOLVED with granted rows
``attach-player``  operator  FULFILL_FAILED because the store named no player (``player_unresolved``)
``make-good``      admin     the order has a player (any state): a Kraty make-good grant
``resolve``        admin     FULFILL_FAILED or REVOKE_FAILED: closed as RESOLVED, nothing more granted
=================  ========  =======================================================================
"""
from __future__ import annotations

import getpass
import hashlib
import json
import re
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation

from sqlalchemy import and_, exists, func, select, text, tuple_
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError

from mappers.accelbyte import is_clean_id

from . import actions, api_keys
from .changes import PLAYER_UNRESOLVED
from .kraty import KratyError
from .ledger import repository as repo
from .ledger import states
from .ledger.models import (
    AuditEntry,
    Delivery,
    Fulfilment,
    FulfilmentItem,
    InboundEvent,
    OutboundEvent,
    utcnow,
)
from .services import Services

RETRY, REVOKE, ATTACH_PLAYER, MAKE_GOOD, RESOLVE = "retry", "revoke", "attach-player", "make-good", "resolve"
ACTION_ROLES = {RETRY: "operator", REVOKE: "operator", ATTACH_PLAYER: "operator", MAKE_GOOD: "admin",
                RESOLVE: "admin"}
SOURCES = ("accelbyte", "app_store", "google_play", "stripe")
ENVIRONMENTS = ("production", "sandbox")
MAX_REASON = 500
MAX_IDEMPOTENCY_KEY = 128
MAX_PAGE = 200
PLAYER_ORDERS = 50
MAX_MAKE_GOOD_LINES = 20
MAX_AMOUNT = 2**53
REDACTED = "[redacted]"


class OpsError(Exception):
    def __init__(self, status: int, code: str, message: str, details: dict | None = None):
        super().__init__(message)
        self.status, self.code, self.message, self.details = status, code, message, details


@dataclass(frozen=True)
class Actor:
    """Who does something: ``key:<name>`` (an API key), ``cli:<os user>``, ``console:<key name>``."""

    name: str
    role: str | None                      # the key's role; None: a trusted caller (the CLI) may do anything
    namespaces: tuple[str, ...] | None = None   # the games it may see; None: all
    request_id: str | None = None

    @classmethod
    def from_key(cls, key, request_id: str | None = None, prefix: str = "key") -> Actor:
        return cls(f"{prefix}:{key.name}", key.role, None if key.namespaces is None else tuple(key.namespaces),
                   request_id)

    @classmethod
    def cli(cls, user: str | None = None) -> Actor:
        return cls(f"cli:{user or getpass.getuser()}", None)

    def sees(self, namespace: str | None) -> bool:
        return self.namespaces is None or namespace in self.namespaces

    def may(self, role: str) -> bool:
        return self.role is None or api_keys.allows(self.role, role)


def utc(value: datetime) -> datetime:
    """An aware datetime in UTC: what the ledger stores (SQLite compares the text, offsets dropped)."""
    return value.astimezone(UTC)


def iso(value: datetime | None) -> str | None:
    return utc(value).isoformat().replace("+00:00", "Z") if value is not None else None


# -- redaction ---------------------------------------------------------------------------------------

_SECRET_KEY = re.compile(r"authori[sz]ation|signature|token|secret|password|passwd|api[-_]?key|cookie|"
                         r"credential|private[-_]?key|session[-_]?key", re.IGNORECASE)
_SECRET_VALUE = re.compile(r"^\s*(bearer|basic|token)\s+\S+|^(sk|rk|whsec)_(live|test)?_?\S+|^kb_\S{20,}",
                           re.IGNORECASE)


def redact(value):
    """A copy of a decoded JSON value with secrets replaced by ``[redacted]``: the values of keys that name
    credentials (authorization, signatures, tokens, secrets, passwords, API keys, cookies...) and strings that
    look like one (``Bearer ...``, Stripe ``sk_``/``rk_``/``whsec_`` keys, our own ``kb_`` keys)."""
    if isinstance(value, dict):
        return {k: (REDACTED if isinstance(k, str) and _SECRET_KEY.search(k) and v not in (None, "", [], {})
                    else redact(v)) for k, v in value.items()}
    if isinstance(value, list):
        return [redact(v) for v in value]
    if isinstance(value, str) and _SECRET_VALUE.search(value):
        return REDACTED
    return value


def _body(raw: bytes | None) -> dict:
    """An inbound event's raw body for ops eyes: decoded and redacted when JSON, else only its size."""
    raw = raw or b""
    try:
        return {"body": redact(json.loads(raw))}
    except (ValueError, UnicodeDecodeError):
        return {"body": None, "bodyNote": f"not JSON ({len(raw)} bytes), not shown"}


# -- orders: list -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class FulfilmentQuery:
    namespace: str | None = None
    source: str | None = None
    state: str | None = None
    player_id: str | None = None
    transaction_id: str | None = None
    sku: str | None = None
    environment: str | None = None
    created_after: datetime | None = None     # inclusive
    created_before: datetime | None = None    # exclusive

    def as_filters(self) -> dict:
        return {"namespace": self.namespace, "source": self.source, "state": self.state, "player": self.player_id,
                "transaction": self.transaction_id, "sku": self.sku, "environment": self.environment,
                "after": iso(self.created_after), "before": iso(self.created_before)}


def summary(f: Fulfilment) -> dict:
    return {"id": f.id, "namespace": f.namespace, "source": f.source, "storefront": f.storefront or None,
            "transactionId": f.transaction_id,
            "playerId": f.player_id, "environment": f.environment, "state": f.state, "reason": f.reason,
            "attention": f.attention, "price": f.price, "currency": f.currency, "attempts": f.attempts,
            "createdAt": iso(f.created_at), "updatedAt": iso(f.updated_at)}


def _in_time(stmt, created, key, query: FulfilmentQuery, after: tuple[datetime, str] | None):
    """``stmt`` limited to the query's time range and to the rows after the keyset ``after``, the order's
    (created_at, id) being the columns ``created`` and ``key``."""
    if query.created_after is not None:
        stmt = stmt.where(created >= utc(query.created_after))
    if query.created_before is not None:
        stmt = stmt.where(created < utc(query.created_before))
    if after is not None:
        stmt = stmt.where(tuple_(created, key) < tuple_(utc(after[0]), after[1]))
    return stmt


COMMON_SKU_SHARE = 0.05     # a SKU on at least this share of item rows is "common"
_SKU_SHARES: dict[str, tuple[float, dict[str, float]]] = {}   # database URL -> (read at, {sku: share})
SKU_SHARES_TTL = 600.0


def sku_is_common(session: Session, sku: str) -> bool:
    """Whether PostgreSQL's statistics (``ANALYZE``: the most common values of fulfilment_items.sku) put this
    SKU on at least ``COMMON_SKU_SHARE`` of the item rows; read once per ``SKU_SHARES_TTL`` per process. Other
    databases, or no statistics yet: not common."""
    bind = session.get_bind()
    if bind.dialect.name != "postgresql":
        return False
    key = str(bind.url)
    read_at, shares = _SKU_SHARES.get(key, (0.0, {}))
    if time.monotonic() - read_at > SKU_SHARES_TTL:
        row = session.execute(text(
            "SELECT most_common_vals::text::text[], most_common_freqs FROM pg_stats "
            "WHERE tablename = 'fulfilment_items' AND attname = 'sku' LIMIT 1")).first()
        shares = dict(zip(row[0], row[1])) if row and row[0] else {}
        _SKU_SHARES[key] = (time.monotonic(), shares)
    return shares.get(sku, 0.0) >= COMMON_SKU_SHARE


def list_fulfilments(session: Session, actor: Actor, query: FulfilmentQuery, limit: int = 50,
                     after: tuple[datetime, str] | None = None) -> tuple[list[dict], tuple[datetime, str] | None]:
    """One page, newest first (created_at, then id, descending), after the keyset ``after``.

    Returns the rows and the keyset of the next page (None on the last page). Every filter is served by an
    index (see migration 0006) whose trailing columns are (created_at, id), so a page deep in the list costs
    the same as the first. A SKU filter pages through the item rows' index (sku, order_created_at,
    fulfilment_id) instead: the page's keys are picked there, each order once however many of its rows name
    the SKU (a bundle, a repeated line), the other filters checked on the order (a primary-key probe per
    candidate), the LIMIT inside so the planner sizes that scan to the page. With a player or a transaction
    id, which name a handful of orders, or with a common SKU (``sku_is_common``) and another filter, the
    orders are walked instead, each probed for the SKU.
    """
    if not 1 <= limit <= MAX_PAGE:
        raise OpsError(422, "validation_failed", f"limit must be 1-{MAX_PAGE}", {"fields": {"limit": ["1-200"]}})
    if query.namespace is not None and not actor.sees(query.namespace):
        raise OpsError(403, "forbidden", f"this key may not see namespace {query.namespace}")
    f = Fulfilment
    where = [column == value for column, value in (
        (f.namespace, query.namespace), (f.source, query.source), (f.state, query.state),
        (f.player_id, query.player_id), (f.transaction_id, query.transaction_id), (f.environment, query.environment))
        if value is not None]
    if actor.namespaces is not None:
        where.append(f.namespace.in_(actor.namespaces))
    i = FulfilmentItem
    # walk the orders and probe each for the SKU when they are a handful (a player, a transaction) or when the
    # SKU is common and another filter narrows the orders: their own indexes find those matches faster than a
    # walk through a common SKU's item rows. Otherwise the SKU's item rows pick the page.
    others = any(value is not None for value in (query.namespace, query.source, query.state, query.environment,
                                                 query.created_after, query.created_before))
    few = query.player_id is not None or query.transaction_id is not None or (
        query.sku is not None and others and sku_is_common(session, query.sku))
    if query.sku is not None and few:   # each probed for the SKU (one index entry)
        where.append(exists().where(i.sku == query.sku, i.order_created_at == f.created_at, i.fulfilment_id == f.id))
    if query.sku is None or few:
        stmt = _in_time(select(f).where(*where), f.created_at, f.id, query, after) \
            .order_by(f.created_at.desc(), f.id.desc()).limit(limit + 1)
    else:   # the page's (created_at, id) from the items' index, then the orders by primary key
        keys = select(i.order_created_at, i.fulfilment_id).where(i.sku == query.sku)
        if where:
            keys = keys.where(exists().where(f.id == i.fulfilment_id, *where))
        keys = _in_time(keys, i.order_created_at, i.fulfilment_id, query, after).distinct() \
            .order_by(i.order_created_at.desc(), i.fulfilment_id.desc()).limit(limit + 1).subquery()
        stmt = select(f).join(keys, and_(f.id == keys.c.fulfilment_id, f.created_at == keys.c.order_created_at)) \
            .order_by(keys.c.order_created_at.desc(), keys.c.fulfilment_id.desc())
    rows = list(session.scalars(stmt))
    more = len(rows) > limit
    rows = rows[:limit]
    return [summary(row) for row in rows], ((rows[-1].created_at, rows[-1].id) if more else None)


# -- orders: one --------------------------------------------------------------------------------------

def _visible(session: Session, actor: Actor, fulfilment_id: str) -> Fulfilment:
    f = session.get(Fulfilment, fulfilment_id) if len(fulfilment_id) <= 64 else None
    if f is None or not actor.sees(f.namespace):  # another game's order is not shown to exist
        raise OpsError(404, "not_found", f"no order {fulfilment_id}")
    return f


def item_view(i: FulfilmentItem) -> dict:
    return {"id": i.id, "line": i.line_no, "component": i.component_no, "sku": i.sku,
            "componentSku": i.component_sku, "itemId": i.item_id, "kind": i.kind, "target": i.target,
            "amount": i.amount, "revokedAmount": i.revoked_amount, "state": i.state, "errorCode": i.error_code,
            "error": i.error, "cycle": i.cycle, "kratyLedgerEntryId": i.kraty_entry_id, "kratyRevokeEntryId": i.revoke_entry_id,
            "updatedAt": iso(i.updated_at)}


def event_view(e: InboundEvent) -> dict:
    return {"id": e.id, "source": e.source, "providerEventId": e.provider_event_id, "type": e.event_type,
            "namespace": e.namespace, "receivedAt": iso(e.received_at), "outcome": e.outcome, "detail": e.detail,
            "contentType": e.content_type, **_body(e.raw_body)}


def history_view(h) -> dict:
    return {"id": h.id, "at": iso(h.at), "actor": h.actor, "from": h.from_state, "to": h.to_state,
            "detail": h.detail}


def delivery_view(d: Delivery) -> dict:
    return {"id": d.id, "sink": d.sink, "state": d.state, "attempts": d.attempts, "lastStatus": d.last_status,
            "lastError": d.last_error, "nextAttemptAt": iso(d.next_attempt_at), "deliveredAt": iso(d.delivered_at)}


def fulfilment_detail(session: Session, actor: Actor, fulfilment_id: str) -> dict:
    """The order with its rows, full history, the store events behind it (redacted), the Kraty webhooks
    about it and what the sinks were sent about it."""
    f = _visible(session, actor, fulfilment_id)
    f = repo.load(session, f.id, history=True)
    events = list(session.scalars(select(InboundEvent).where(InboundEvent.fulfilment_id == f.id)
                                  .order_by(InboundEvent.id)))
    # Kraty webhooks about the order: linked to it when handled, or named by a "confirmed by Kraty" note
    named = {str(h.detail.get("event")) for h in f.history
             if isinstance(h.detail, dict) and h.detail.get("confirmed_by_kraty") and h.detail.get("event")}
    kraty = [e for e in events if e.source == "kraty"]
    seen = {e.id for e in kraty}
    if named:
        kraty += [e for e in session.scalars(select(InboundEvent).where(
            InboundEvent.source == "kraty", InboundEvent.namespace == f.namespace,
            InboundEvent.provider_event_id.in_(sorted(named)))) if e.id not in seen]
    deliveries = session.execute(
        select(OutboundEvent, Delivery).outerjoin(Delivery, Delivery.event_id == OutboundEvent.id)
        .where(OutboundEvent.fulfilment_id == f.id).order_by(OutboundEvent.created_at, OutboundEvent.id)).all()
    sink_events: dict[str, dict] = {}
    for event, delivery in deliveries:
        entry = sink_events.setdefault(event.id, {"eventId": event.id, "type": event.type,
                                                  "occurredAt": iso(event.occurred_at),
                                                  "playerSequence": event.player_seq, "deliveries": []})
        if delivery is not None:
            entry["deliveries"].append(delivery_view(delivery))
    return {**summary(f), "lines": f.lines, "lookup": f.lookup, "playerKey": f.player_key,
            "followup": f.followup, "followupState": f.followup_state, "nextAttemptAt": iso(f.next_attempt_at),
            "stateChangedAt": iso(f.state_changed_at), "items": [item_view(i) for i in f.items],
            "history": [history_view(h) for h in f.history],
            "inboundEvents": [event_view(e) for e in events if e.source != "kraty"],
            "kratyWebhooks": [event_view(e) for e in sorted(kraty, key=lambda e: e.id)],
            "sinkEvents": list(sink_events.values())}


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
    if not 1 <= limit <= MAX_PAGE:
        raise OpsError(422, "validation_failed", f"limit must be 1-{MAX_PAGE}", {"fields": {"limit": ["1-200"]}})
    if query.namespace is not None and not actor.sees(query.namespace):
        raise OpsError(403, "forbidden", f"this key may not see namespace {query.namespace}")
    a = AuditEntry
    stmt = select(a)
    for column, value in ((a.target_type, query.target_type), (a.target_id, query.target_id),
                          (a.actor, query.actor), (a.action, query.action), (a.namespace, query.namespace)):
        if value is not None:
            stmt = stmt.where(column == value)
    if actor.namespaces is not None:
        stmt = stmt.where(a.namespace.in_(actor.namespaces))
    if query.after is not None:
        stmt = stmt.where(a.at >= utc(query.after))
    if query.before is not None:
        stmt = stmt.where(a.at < utc(query.before))
    if after_id is not None:
        stmt = stmt.where(a.id < after_id)
    rows = list(session.scalars(stmt.order_by(a.id.desc()).limit(limit + 1)))
    more = len(rows) > limit
    rows = rows[:limit]
    return [audit_view(row) for row in rows], (rows[-1].id if more else None)


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
    fields: dict[str, list[str]] = {}
    reason = reason.strip() if isinstance(reason, str) else ""
    if not reason:
        fields["reason"] = ["required: why (recorded in the audit log)"]
    elif len(reason) > MAX_REASON:
        fields["reason"] = [f"at most {MAX_REASON} characters"]
    if idempotency_key is not None and not (isinstance(idempotency_key, str)
                                            and 0 < len(idempotency_key) <= MAX_IDEMPOTENCY_KEY
                                            and idempotency_key.isprintable()):
        fields["idempotencyKey"] = [f"1-{MAX_IDEMPOTENCY_KEY} printable characters"]
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
        entry = session.scalars(select(AuditEntry).where(AuditEntry.idempotency_key == stored_key)).one_or_none()
        if entry is None:
            return None
        if (entry.after or {}).get("request", {}).get("fingerprint") != request["fingerprint"]:
            raise OpsError(422, "idempotency_key_reused", "this idempotency key was used for another request",
                           {"auditId": entry.id})
        made = (entry.after or {}).get("makeGood")
        entry_id = entry.id
    if made is not None and made.get("status") == "pending":
        return _grant_make_good(services, entry_id, replayed=True)
    if made is not None and made.get("status") == "failed":
        raise _kraty_refused(made.get("error", ""), entry_id)
    with services.session() as session:
        return answer(session.get(AuditEntry, entry_id), replayed=True)


def _audit(actor: Actor, action: str, f: Fulfilment, reason: str, before: dict, after: dict,
           stored_key: str | None) -> AuditEntry:
    return AuditEntry(at=utcnow(), actor=actor.name, role=actor.role or "cli", action=action,
                      target_type="fulfilment", target_id=f.id, namespace=f.namespace, reason=reason,
                      before=before, after=after, request_id=actor.request_id, idempotency_key=stored_key)


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
        entry = _audit(actor, action, f, reason, pending.before, {**snapshot(f), "request": request}, stored_key)
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
        entry = _audit(actor, MAKE_GOOD, f, reason, before,
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


def _finish_make_good(services: Services, entry_id: int, made: dict, history: tuple[str, dict] | None):
    for _ in range(5):  # the order may be changed by an attempt meanwhile (optimistic lock): read it again
        with services.session() as session:
            entry = session.get(AuditEntry, entry_id)
            f = repo.load(session, entry.target_id)
            if history is not None:
                repo.note(f, history[0], history[1])
            entry.after = {**snapshot(f), "request": entry.after["request"], "makeGood": made}
            try:
                session.commit()
            except StaleDataError:
                session.rollback()
                continue
            session.refresh(entry)
            session.expunge(entry)
            return entry
    raise OpsError(409, "busy", "the order kept changing; the grant is made, its note is not: try again")


# -- players ------------------------------------------------------------------------------------------

def player_view(services: Services, actor: Actor, namespace: str, player_id: str,
                limit: int = PLAYER_ORDERS) -> dict:
    """The bridge's orders for a player (newest first, up to ``limit``) with totals, beside Kraty's profile.
    Kraty unreachable or answering an error: ``kraty: {"available": false, "error": ...}``, the rest as usual.

    Totals: orders by state (all of them), and ``paid`` by currency: the price of every production order
    that was not taken back (REVOKED), where the store told the price.
    """
    if not actor.sees(namespace):
        raise OpsError(403, "forbidden", f"this key may not see namespace {namespace}")
    if services.catalog.game(namespace) is None:
        raise OpsError(422, "validation_failed", f"unknown namespace {namespace}",
                       {"fields": {"namespace": ["not a game of the catalog"]}})
    f = Fulfilment
    mine = (f.namespace == namespace, f.player_id == player_id)
    with services.session() as session:
        orders = [summary(row) for row in session.scalars(
            select(f).where(*mine).order_by(f.created_at.desc(), f.id.desc()).limit(limit))]
        by_state = dict(session.execute(select(f.state, func.count()).where(*mine).group_by(f.state)).all())
        priced = session.execute(select(f.price, f.currency).where(
            *mine, f.environment == "production", f.state != states.REVOKED, f.price.is_not(None),
            f.currency.is_not(None))).all()
    paid: Counter = Counter()
    for price, currency in priced:
        try:
            paid[currency.upper()] += Decimal(price)
        except (InvalidOperation, AttributeError):
            continue
    try:
        profile = services.kraty(namespace).player_profile(player_id)
        kraty = {"available": True, "profile": profile}
    except KratyError as exc:
        kraty = {"available": False, "error": str(exc), **({"status": exc.status} if exc.status else {})}
    return {"playerId": player_id, "namespace": namespace, "orders": orders,
            "totals": {"orders": sum(by_state.values()), "byState": by_state,
                       "paid": {currency: str(amount) for currency, amount in sorted(paid.items())}},
            "kraty": kraty}
