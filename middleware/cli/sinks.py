"""``flask sinks``: the configured sinks and their deliveries; replay what was dead-lettered; enable a sink.

Whoever can run this can already reach the database, so it asks for no token.
"""
from __future__ import annotations


import click
from flask.cli import AppGroup
from sqlalchemy import func, select

from middleware.cli.table import (
    ISO_TIME,
    JSON_OPTION,
    Column,
    echo_json,
    iso,
    progress,
    state_style,
    table,
    when,
)
from middleware import ops
from middleware.ledger.models import Delivery, OutboundEvent, SinkState
from middleware.services import services

from middleware.sinks.replay import audit
from middleware.sinks.replay import replay as replay_deliveries
from middleware.sinks.states import STATES, ReplayError, enable_sink

sinks = AppGroup("sinks", help="Sinks: list them and their deliveries, replay dead-lettered deliveries, enable.")


SINK_COLUMNS = (
    Column("NAME", "name", None), Column("TYPE", "type"), Column("URL", "url", 48), Column("EVENTS", "events", 40),
    Column("ENVIRONMENTS", "environments", 24), Column("STATUS", "status", 80, style=state_style),
    Column("DELIVERIES", "byState", 60),
)
DELIVERY_COLUMNS = (
    Column("ID", "id", None), Column("SINK", "sink", 20), Column("STATE", "state", style=state_style),
    Column("ATTEMPTS", "attempts", align=">"), Column("STATUS", "lastStatus", align=">"),
    Column("EVENT TYPE", "eventType", 32), Column("EVENT", "eventId", None), Column("PLAYER#SEQ", "playerSeq", 32),
    Column("CREATED", "created"), Column("NEXT ATTEMPT", "next"), Column("ERROR", "lastError", 60),
)


@sinks.command("list")
@JSON_OPTION
def list_sinks(as_json):
    """The configured sinks, whether each is enabled, and its deliveries by state."""
    svc = services()
    with svc.session() as session:
        counts: dict[str, dict[str, int]] = {}
        for sink, state, count in session.execute(select(Delivery.sink, Delivery.state, func.count())
                                                  .group_by(Delivery.sink, Delivery.state)):
            counts.setdefault(sink, {})[state] = count
        disabled = {s.name: (s.disabled_at, s.reason)
                    for s in session.scalars(select(SinkState).where(SinkState.disabled_at.is_not(None)))}
    views = [{"name": s.name, "type": s.type, "url": s.url, "events": list(s.events),
              "environments": sorted(s.environments), "enabled": s.name not in disabled,
              "disabledAt": iso(disabled[s.name][0]) if s.name in disabled else None,
              "disabledReason": disabled[s.name][1] if s.name in disabled else None,
              "deliveries": dict(sorted(counts.get(s.name, {}).items()))} for s in svc.sinks]
    if as_json:
        echo_json(views)
        return
    rows = [{**v, "status": f"DISABLED since {when(disabled[v['name']][0])}: {v['disabledReason']}"
             if not v["enabled"] else "enabled",
             "byState": ", ".join(f"{state} {n}" for state, n in v["deliveries"].items()) or "none"} for v in views]
    click.echo(table(SINK_COLUMNS, rows, empty="no sinks configured (KB_SINKS)"))


def _view(d: Delivery, event: OutboundEvent) -> dict:
    """A delivery as ``GET /v1/sinks/{name}/deliveries`` shows it."""
    return {"id": d.id, "sink": d.sink, "state": d.state, "attempts": d.attempts,
            "nextAttemptAt": iso(d.next_attempt_at), "lastStatus": d.last_status, "lastError": d.last_error,
            "createdAt": iso(d.created_at), "deliveredAt": iso(d.delivered_at), "eventId": event.id,
            "eventType": event.type, "playerId": event.player_id, "playerSequence": event.player_seq}


@sinks.command("deliveries")
@click.option("--sink", "sink_name", help="Only this sink's deliveries.")
@click.option("--state", type=click.Choice(STATES), help="Only deliveries in this state (dead: the dead letters).")
@click.option("--since", type=ISO_TIME, help="Only deliveries recorded at or after this ISO 8601 time.")
@click.option("--limit", type=click.IntRange(1, 1000), default=50, show_default=True)
@JSON_OPTION
def list_deliveries(sink_name, state, since, limit, as_json):
    """The most recent deliveries, newest first."""
    if sink_name and services().sinks.get(sink_name) is None:
        raise click.BadParameter(f"no sink {sink_name} is configured", param_hint="--sink")
    stmt = (select(Delivery, OutboundEvent).join(OutboundEvent, Delivery.event_id == OutboundEvent.id)
            .order_by(Delivery.created_at.desc(), Delivery.id).limit(limit))
    if sink_name:
        stmt = stmt.where(Delivery.sink == sink_name)
    if state:
        stmt = stmt.where(Delivery.state == state)
    if since is not None:
        stmt = stmt.where(Delivery.created_at >= since)
    with services().session() as session:
        views = [(_view(d, event), d) for d, event in session.execute(stmt)]
    if as_json:
        echo_json([view for view, _ in views])
        return
    rows = [{**view, "playerSeq": f"{view['playerId'] or '-'}#{view['playerSequence'] or '-'}",
             "created": when(d.created_at), "next": when(d.next_attempt_at)} for view, d in views]
    click.echo(table(DELIVERY_COLUMNS, rows, empty="no deliveries match"))


REASON = click.option("--reason", required=True, help="Why (kept in the audit log, actor cli:<login>).")


def _audited(action: str, target_type: str, target_id: str, reason: str, after: dict) -> None:
    actor = ops.Actor.cli()
    audit(services(), actor.name, actor.role, action, target_type, target_id, reason, after)


@sinks.command("replay")
@click.argument("delivery_id", required=False)
@click.option("--sink", "sink_name", help="With --since: every dead-lettered delivery of this sink.")
@click.option("--since", type=ISO_TIME, help="With --sink: deliveries recorded at or after this ISO 8601 time.")
@REASON
def replay(delivery_id, sink_name, since, reason):
    """Send DELIVERY_ID again, or every dead-lettered (or disabled) delivery of --sink recorded --since a time.
    Each starts its sink's retry schedule from the beginning. Audited."""
    if bool(delivery_id) == bool(sink_name or since) or (not delivery_id and not (sink_name and since)):
        raise click.UsageError("give a DELIVERY_ID, or --sink NAME and --since TIME")
    if not reason.strip() or len(reason) > ops.MAX_REASON:
        raise click.UsageError(f"--reason must be 1-{ops.MAX_REASON} characters")

    def bar(ids: list[str]):
        with progress(ids, f"replaying {len(ids)} deliveries") as shown:
            yield from shown

    try:
        if delivery_id:
            ids = replay_deliveries(services(), delivery_id=delivery_id)
        else:
            ids = replay_deliveries(services(), sink=sink_name, since=since, progress=bar)
    except ReplayError as exc:
        raise click.ClickException(str(exc)) from None
    if delivery_id:
        _audited("sink.replay", "delivery", delivery_id, reason, {"replayed": len(ids), "deliveryIds": ids})
    else:
        _audited("sink.replay_since", "sink", sink_name, reason,
                 {"replayed": len(ids), "deliveryIds": ids, "since": since.isoformat()})
    click.echo(f"{len(ids)} deliver{'y' if len(ids) == 1 else 'ies'} replayed")


@sinks.command("enable")
@click.argument("name")
@REASON
def enable(name, reason):
    """Enable a sink disabled after a 410 (its stopped deliveries need `flask sinks replay --sink`). Audited."""
    with services().session() as session:
        changed = enable_sink(session, name)
        session.commit()
    if changed:
        _audited("sink.enable", "sink", name, reason, {"enabled": True})
    click.echo(f"sink {name} enabled" if changed else f"sink {name} was not disabled")
