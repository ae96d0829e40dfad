"""What the AccelByte-compatible endpoints do with the ledger: record, attempt, retry, revoke, query."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from urllib.parse import urlencode

from flask import request
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from mappers import accelbyte_results as results
from middleware.orders import actions
from middleware.orders import attempt_core
from middleware.orders import create
from middleware.orders import order_insert
from middleware.orders import retry as retry_policy
from middleware.ledger import repository as repo
from middleware.ledger import states
from middleware.ledger.models import Fulfilment, utcnow
from middleware.metrics import recorders as metrics
from middleware.orders.lines import UNKNOWN_ITEM_ID, UNSUPPORTED_TYPE, largest_total, request_hash, resolve_line
from middleware.services import services
from middleware.ledger.storable import MESSAGE, unstorable

from middleware.api import settle
from middleware.api.errors import VALIDATION, ApiError

SOURCE = "accelbyte"
MAX_BULK = 50
DIFFERENT_PAYLOAD = 38128
UNKNOWN_TRANSACTION = 38145
# a repeated PUT changes nothing on these (a FULFILL_FAILED one retries its failed items; one still in
# progress carries on with an attempt)
NOTHING_TO_DO = (states.FULFILLED, states.REVOKED, states.REVOKE_FAILED, states.RESOLVED)
QUERY_PARAMS = {"transactionId", "userId", "state", "startTime", "endTime", "offset", "limit"}
# the query lists settled orders only (see settle.py): FULFILL_FAILED / REVOKE_FAILED there are final
STATE_FILTER = {ab: tuple(state for state in results.SETTLED if results.ab_state(state) == ab)
                for ab in ("FULFILLED", "FULFILL_FAILED", "REVOKED", "REVOKE_FAILED")}


def _resolve_all(game, lines):
    resolved = [resolve_line(game, line) for line in lines]
    unknown = [r for r in resolved if r.product is None]
    if len(unknown) == len(resolved):
        first = unknown[0]
        raise ApiError(404, int(first.error_code), first.error,
                       {"itemId": first.line.get("itemId")} if first.error_code == UNKNOWN_ITEM_ID
                       else {"sku": first.line.get("itemSku")})
    largest, limit = largest_total(resolved), services().settings.max_grant_total
    if largest is not None and largest[0] > limit:
        total, kind, key = largest
        raise ApiError(400, VALIDATION, f"validation error: the order grants {total} of {kind} {key} in all (quantity x "
                       f"bundle contents x amount), more than the {limit} one order may grant",
                       {"total": total, "limit": limit, kind: key})
    for r in resolved:
        if r.error_code == UNSUPPORTED_TYPE and r.product.type != "BUNDLE":
            identity = r.line.get("itemId") or r.line.get("itemSku")
            raise ApiError(400, int(UNSUPPORTED_TYPE),
                           f"Cannot fulfill item with type [{r.product.type}] in item [{identity}]",
                           {"itemType": r.product.type, "itemIdentity": identity})
    return resolved


def _different_payload():
    return ApiError(400, DIFFERENT_PAYLOAD,
                    "Cannot retry fulfillment with different payload. Please check the items list.")


def _actor(storefront: str) -> str:
    return f"storefront:{storefront}"


def fulfil(game, storefront: str, user_id: str, transaction_id: str, lines: list[dict], raw_body: bytes) -> dict:
    """Record the order (once per storefront and transaction id) and make an attempt; answer the
    FulfillmentV2Result after it."""
    svc = services()
    actor = _actor(storefront)
    resolved = _resolve_all(game, lines)
    digest = request_hash(lines)
    event = {"source": SOURCE, "provider_event_id": f"{game.namespace}:{storefront}:{transaction_id}:{digest[:16]}",
             "namespace": game.namespace, "content_type": (request.content_type or "")[:128] or None,
             "raw_body": raw_body}
    now = utcnow()
    # Created leased and already FULFILLING: this request makes the first attempt right away.
    new = create.new_order_rows(namespace=game.namespace, source=SOURCE, transaction_id=transaction_id, lines=lines,
                                resolved=resolved, actor=actor, state=states.FULFILLING, now=now, player_id=user_id,
                                storefront=storefront, key_scope=storefront, environment="production",
                                lease_owner=svc.identity,
                                lease_until=now + timedelta(seconds=svc.settings.lease_seconds))
    for _ in range(3):  # the row we collided with may itself roll back: then try again
        with svc.engine.connect() as connection:
            f = order_insert.insert_order(connection, new, event)  # committed before Kraty is called
            if f is not None:
                metrics.ingested(SOURCE, True)  # kb_ingested_events_total
                # we hold the lease we inserted with: the first attempt, the workers' way, on the order in hand
                outcome = attempt_core.attempt_inserted(svc, connection, f, actor)
        if f is not None:
            return _attempted(svc, game, f, outcome, actor)
        answer = _repeated(svc, game, storefront, user_id, transaction_id, digest, event, actor)
        if answer is not None:
            return answer
    raise ApiError(503, 20000, "the order is being written by another request; try again")


def _attempted(svc, game, f, outcome, actor: str) -> dict:
    """The answer after the new order's first attempt (``f`` as the attempt left it)."""
    retry_policy.schedule(svc, f.id, outcome)
    if not outcome.ran:  # the lease was taken over meanwhile: carry on as any repeat would
        actions.run(svc, f.id, actor, actions.RETRY)
    elif f.state not in states.ACTIVE:
        return results.fulfilment_result(f, game)
    return _result(f.id, game, results.fulfilment_result, actor)


def _repeated(svc, game, storefront: str, user_id: str, transaction_id: str, digest: str, event: dict,
              actor: str) -> dict | None:
    """A repeat of an order that is there: its event recorded (once), then the order answered as it stands if it is
    settled, else carried on with an attempt. None if the order is not there after all (its insert rolled back)."""
    with svc.session() as session:
        f = repo.find(session, game.namespace, SOURCE, transaction_id, storefront)
        if f is None:
            return None
        if f.request_hash != digest or f.player_id != user_id:
            raise _different_payload()
        repo.record_event(session, fulfilment_id=f.id, **event)
        metrics.ingested(SOURCE, False)  # kb_ingested_events_total
        session.commit()
        if f.state in NOTHING_TO_DO:  # a repeat of a settled order: answer it as it stands, claim nothing
            return results.fulfilment_result(f, game)
        fulfilment_id = f.id
    actions.run(svc, fulfilment_id, actor, actions.RETRY)
    return _result(fulfilment_id, game, results.fulfilment_result, actor)


def _existing(game, storefront: str, user_id: str, transaction_id: str) -> str:
    """The id of this storefront's order; another storefront's, like none at all, is 38145."""
    with services().session() as session:
        f = repo.find(session, game.namespace, SOURCE, transaction_id, storefront)
        if f is None or f.player_id != user_id:
            raise ApiError(404, UNKNOWN_TRANSACTION, f"Fulfillment with transactionId [{transaction_id}] does not exist",
                           {"transactionId": transaction_id})
        return f.id


def retry(game, storefront: str, user_id: str, transaction_id: str) -> dict:
    fulfilment_id = _existing(game, storefront, user_id, transaction_id)
    actions.run(services(), fulfilment_id, _actor(storefront), actions.RETRY)
    return _result(fulfilment_id, game, results.fulfilment_result, _actor(storefront))


def revoke(game, storefront: str, user_id: str, transaction_id: str) -> dict:
    fulfilment_id = _existing(game, storefront, user_id, transaction_id)
    actions.run(services(), fulfilment_id, _actor(storefront), actions.REVOKE, reason="revoked by storefront")
    return _result(fulfilment_id, game, results.revocation_result, _actor(storefront))


def _result(fulfilment_id: str, game, build, actor: str) -> dict:
    """The settled order's answer; NotSettled (503) if it is still being retried after the inline wait."""
    svc = services()
    settle.settle(svc, fulfilment_id, actor)
    with svc.session() as session:
        f = repo.load(session, fulfilment_id)
        if f.state in states.ACTIVE:  # moved on again meanwhile (a store's refund...): still not settled
            raise settle.not_settled(svc, f)
        return build(f, game)


def _time(args, name: str) -> datetime | None:
    raw = args.get(name)
    if raw is None:
        return None
    try:
        value = datetime.fromisoformat(raw.replace("Z", "+00:00").replace(" ", "+"))
    except ValueError:
        raise ApiError(400, VALIDATION, f"{name}: not an ISO 8601 time: {raw!r}") from None
    if value.tzinfo is None:
        raise ApiError(400, VALIDATION, f"{name}: give a time zone (e.g. 2026-11-21T10:00:00Z)")
    try:
        return value.astimezone(timezone.utc)  # SQLite compares the stored UTC wall time: convert first
    except OverflowError:
        raise ApiError(400, VALIDATION, f"{name}: out of range: {raw!r}") from None


def _int(args, name: str, default: int, low: int, high: int) -> int:
    raw = args.get(name)
    if raw is None:
        return default
    if not (raw.isascii() and raw.isdigit()) or len(raw) > len(str(high)) or not low <= int(raw) <= high:
        raise ApiError(400, VALIDATION, f"{name}: must be an integer from {low} to {high}")
    return int(raw)


def query(game, storefront: str, args) -> tuple[list[Fulfilment], dict]:
    """The storefront's own settled orders of the game, newest first."""
    unknown = sorted(set(args) - QUERY_PARAMS)
    if unknown:
        raise ApiError(400, VALIDATION, f"unknown query parameter(s): {', '.join(unknown)}")
    if unstorable(list(args.items(multi=True))):
        raise ApiError(400, VALIDATION, f"query parameters {MESSAGE}")
    offset = _int(args, "offset", 0, 0, 1_000_000)
    limit = _int(args, "limit", 20, 1, 100)
    start, end = _time(args, "startTime"), _time(args, "endTime")
    if start and end and start >= end:
        raise ApiError(400, VALIDATION, "startTime must be before endTime")
    stmt = select(Fulfilment).where(Fulfilment.namespace == game.namespace, Fulfilment.source == SOURCE,
                                    Fulfilment.storefront == storefront)
    if "state" in args:
        if args["state"] not in STATE_FILTER:
            raise ApiError(400, VALIDATION, f"state: must be one of {', '.join(STATE_FILTER)}")
        stmt = stmt.where(Fulfilment.state.in_(STATE_FILTER[args["state"]]))
    else:
        stmt = stmt.where(Fulfilment.state.in_(results.SETTLED))
    if "transactionId" in args:
        stmt = stmt.where(Fulfilment.transaction_id == args["transactionId"])
    if "userId" in args:
        stmt = stmt.where(Fulfilment.player_id == args["userId"])
    if start:
        stmt = stmt.where(Fulfilment.created_at >= start)
    if end:
        stmt = stmt.where(Fulfilment.created_at < end)
    stmt = (stmt.order_by(Fulfilment.created_at.desc(), Fulfilment.id.desc()).offset(offset).limit(limit + 1)
            .options(selectinload(Fulfilment.items), selectinload(Fulfilment.history)))
    with services().session() as session:
        rows = list(session.scalars(stmt))
    paging = {}
    base = {k: v for k, v in args.items() if k not in ("offset", "limit")}
    if len(rows) > limit:
        paging["next"] = request.base_url + "?" + urlencode({**base, "offset": offset + limit, "limit": limit})
    if offset > 0:
        paging["previous"] = request.base_url + "?" + urlencode({**base, "offset": max(0, offset - limit),
                                                                  "limit": limit})
    return rows[:limit], paging
