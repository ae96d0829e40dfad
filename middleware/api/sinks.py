"""``/v1/sinks``: the configured sinks, their deliveries, and replaying what was dead-lettered.

Listing needs a ``viewer`` key; replaying and enabling a sink need ``operator`` and a reason, and are
audited (``audit_log``), like ``flask sinks replay`` / ``flask sinks enable``.
"""
from __future__ import annotations


from flask import g
from marshmallow import RAISE, Schema, fields, validate
from sqlalchemy import select

from middleware.api import auth
from middleware.ledger.models import Delivery, OutboundEvent
from middleware.services import services
from middleware.sinks.replay import UnknownTarget, audit, overview, replay
from middleware.sinks.states import STATES, ReplayError, enable_sink

from middleware.api.errors import ApiError
from middleware.api.v1 import Blueprint, Strict, UtcDateTime

blp = Blueprint("sinks", __name__, url_prefix="/v1/sinks",
                description="Sinks (CRM and analytics destinations): their deliveries, replay and enable. "
                            "Reading needs a `viewer` key; replay and enable need `operator`.")


class Reason(Strict):
    reason = fields.String(required=True, validate=validate.Length(1, 500),
                           metadata={"description": "why (kept in the audit log)"})


class ReplaySince(Reason):
    since = UtcDateTime(required=True, metadata={"description": "replay deliveries recorded at or after this time "
                                                                "(a time still to come replays nothing)"})


class DeliveryArgs(Strict):
    state = fields.String(validate=validate.OneOf(STATES))
    since = UtcDateTime(metadata={"description": "recorded at or after this time"})
    limit = fields.Integer(load_default=50, validate=validate.Range(1, 200))


class DeliverySchema(Schema):
    id = fields.String()
    sink = fields.String()
    state = fields.String()
    attempts = fields.Integer()
    nextAttemptAt = fields.DateTime(allow_none=True)
    lastStatus = fields.Integer(allow_none=True)
    lastError = fields.String(allow_none=True)
    createdAt = fields.DateTime()
    deliveredAt = fields.DateTime(allow_none=True)
    eventId = fields.String()
    eventType = fields.String()
    playerId = fields.String(allow_none=True)
    playerSequence = fields.Integer(allow_none=True)


class SinkSchema(Schema):
    name = fields.String()
    type = fields.String()
    events = fields.List(fields.String())
    environments = fields.List(fields.String())
    enabled = fields.Boolean()
    disabledReason = fields.String(allow_none=True)
    deliveries = fields.Dict(keys=fields.String(), values=fields.Integer(),
                             metadata={"description": "deliveries by state"})


class ReplayResult(Schema):
    replayed = fields.Integer()
    deliveryIds = fields.List(fields.String())


def _sink(name: str):
    sink = services().sinks.get(name)
    if sink is None:
        raise ApiError(404, "not_found", f"no sink {name} is configured")
    return sink


def _audit(action: str, target_type: str, target_id: str, reason: str, after: dict) -> None:
    key = g.api_key
    audit(services(), f"key:{key.name}", key.role, action, target_type, target_id, reason, after,
          g.get("request_id"))


def _delivery(d: Delivery, event: OutboundEvent) -> dict:
    return {"id": d.id, "sink": d.sink, "state": d.state, "attempts": d.attempts, "nextAttemptAt": d.next_attempt_at,
            "lastStatus": d.last_status, "lastError": d.last_error, "createdAt": d.created_at,
            "deliveredAt": d.delivered_at, "eventId": event.id, "eventType": event.type,
            "playerId": event.player_id, "playerSequence": event.player_seq}


@blp.route("", methods=["GET"])
@blp.response(200, SinkSchema(many=True))
@blp.doc(security=[{"apiKey": []}])
def list_sinks():
    """The configured sinks, whether each is enabled, and their deliveries by state."""
    key = auth.require("viewer")
    with services().session() as session:
        return overview(session, services().sinks, key.namespaces)


@blp.route("/<name>/deliveries", methods=["GET"])
@blp.arguments(DeliveryArgs, location="query", unknown=RAISE)
@blp.response(200, DeliverySchema(many=True))
@blp.doc(security=[{"apiKey": []}])
def list_deliveries(args, name):
    """A sink's deliveries, newest first (``state=dead`` lists its dead letters). A key limited to some
    games sees only the deliveries of their events."""
    key = auth.require("viewer")
    _sink(name)
    stmt = (select(Delivery, OutboundEvent).join(OutboundEvent, Delivery.event_id == OutboundEvent.id)
            .where(Delivery.sink == name).order_by(Delivery.created_at.desc(), Delivery.id.desc())
            .limit(args["limit"]))
    if key.namespaces is not None:
        stmt = stmt.where(OutboundEvent.namespace.in_(key.namespaces))
    if "state" in args:
        stmt = stmt.where(Delivery.state == args["state"])
    if "since" in args:
        stmt = stmt.where(Delivery.created_at >= args["since"])
    with services().session() as session:
        return [_delivery(d, event) for d, event in session.execute(stmt)]


def _replayed(**target) -> dict:
    try:
        ids = replay(services(), namespaces=g.api_key.namespaces, **target)
    except UnknownTarget as exc:
        raise ApiError(404, "not_found", str(exc)) from None
    except ReplayError as exc:
        raise ApiError(409, "cannot_replay", str(exc)) from None
    return {"replayed": len(ids), "deliveryIds": ids}


@blp.route("/<name>/deliveries/<delivery_id>/replay", methods=["POST"])
@blp.arguments(Reason, location="json")
@blp.response(200, ReplayResult)
@blp.doc(security=[{"apiKey": []}])
def replay_one(body, name, delivery_id):
    """Send one delivery again from the start of its sink's schedule (a dead letter, a disabled one, or a
    delivered one sent again). 409 `cannot_replay` while it is still scheduled, if its player was erased or
    its sink is disabled. Another game's delivery, for a key limited to some games: 404."""
    auth.require("operator")
    _sink(name)
    result = _replayed(delivery_id=delivery_id, sink=name)
    _audit("sink.replay", "delivery", delivery_id, body["reason"], result)
    return result


@blp.route("/<name>/replay", methods=["POST"])
@blp.arguments(ReplaySince, location="json")
@blp.response(200, ReplayResult)
@blp.doc(security=[{"apiKey": []}])
def replay_since(body, name):
    """Send again every dead-lettered (or disabled) delivery of the sink recorded at or after `since` (a key
    limited to some games: only the deliveries of their events)."""
    auth.require("operator")
    _sink(name)
    result = _replayed(sink=name, since=body["since"])
    _audit("sink.replay_since", "sink", name, body["reason"], {**result, "since": body["since"].isoformat()})
    return result


@blp.route("/<name>/enable", methods=["POST"])
@blp.arguments(Reason, location="json")
@blp.response(200, SinkSchema)
@blp.doc(security=[{"apiKey": []}])
def enable(body, name):
    """Enable a sink disabled after a 410 Gone (its stopped deliveries then need a replay). A sink serves every
    game: a key limited to some games may not (403)."""
    key = auth.require("operator")
    sink = _sink(name)
    if key.namespaces is not None:
        raise ApiError(403, "forbidden", f"the key {key.name} is limited to some games; sink {name} serves every "
                                         "game: enabling it needs a key for all games")
    with services().session() as session:
        changed = enable_sink(session, name)
        session.commit()
    if not changed:
        raise ApiError(409, "invalid_state", f"sink {name} is not disabled", {"state": "enabled"})
    _audit("sink.enable", "sink", name, body["reason"], {"enabled": True})
    return {"name": sink.name, "type": sink.type, "events": list(sink.events),
            "environments": sorted(sink.environments), "enabled": True, "disabledReason": None, "deliveries": {}}
