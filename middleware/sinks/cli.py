"""``flask sinks``: the configured sinks and their deliveries; replay what was dead-lettered; enable a sink.

Whoever can run this can already reach the database, so it asks for no token.
"""
from __future__ import annotations

from datetime import datetime, timezone

import click
from flask.cli import AppGroup
from sqlalchemy import func, select

from middleware.ledger.models import Delivery, OutboundEvent, SinkState
from middleware.services import services

from .replay import replay as replay_deliveries
from .states import STATES, ReplayError, enable_sink

sinks = AppGroup("sinks", help="Sinks: list them and their deliveries, replay dead-lettered deliveries, enable.")


def _since(value: str) -> datetime:
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise click.BadParameter(f"{value!r} is not an ISO 8601 time (2026-11-21T10:00:00Z)") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


@sinks.command("list")
def list_sinks():
    """The configured sinks, whether each is enabled, and its deliveries by state."""
    svc = services()
    if not len(svc.sinks):
        click.echo("no sinks configured (KB_SINKS)")
        return
    with svc.session() as session:
        counts: dict[str, dict[str, int]] = {}
        for sink, state, count in session.execute(select(Delivery.sink, Delivery.state, func.count())
                                                  .group_by(Delivery.sink, Delivery.state)):
            counts.setdefault(sink, {})[state] = count
        disabled = {s.name: s for s in session.scalars(select(SinkState).where(SinkState.disabled_at.is_not(None)))}
    for sink in svc.sinks:
        status = f"DISABLED since {disabled[sink.name].disabled_at:%Y-%m-%dT%H:%M:%SZ}: {disabled[sink.name].reason}" \
            if sink.name in disabled else "enabled"
        by_state = ", ".join(f"{state} {n}" for state, n in sorted(counts.get(sink.name, {}).items())) or "none"
        click.echo(f"{sink.name}  {sink.type}  {sink.url}  events={','.join(sink.events)}  "
                   f"environments={','.join(sorted(sink.environments))}  {status}")
        click.echo(f"    deliveries: {by_state}")


@sinks.command("deliveries")
@click.option("--sink", "sink_name", help="Only this sink's deliveries.")
@click.option("--state", type=click.Choice(STATES), help="Only deliveries in this state.")
@click.option("--limit", type=click.IntRange(1, 1000), default=50)
def list_deliveries(sink_name, state, limit):
    """The most recent deliveries, newest first."""
    stmt = (select(Delivery, OutboundEvent).join(OutboundEvent, Delivery.event_id == OutboundEvent.id)
            .order_by(Delivery.created_at.desc(), Delivery.id).limit(limit))
    if sink_name:
        stmt = stmt.where(Delivery.sink == sink_name)
    if state:
        stmt = stmt.where(Delivery.state == state)
    with services().session() as session:
        for d, event in session.execute(stmt):
            status = d.last_status if d.last_status is not None else "-"
            click.echo(f"{d.id}  {d.sink}  {d.state:<9} attempts={d.attempts} status={status}  {event.type}  "
                       f"{event.id}  {event.player_id or '-'}#{event.player_seq or '-'}  {d.last_error or ''}")


@sinks.command("replay")
@click.argument("delivery_id", required=False)
@click.option("--sink", "sink_name", help="With --since: every dead-lettered delivery of this sink.")
@click.option("--since", help="With --sink: deliveries recorded at or after this ISO 8601 time.")
def replay(delivery_id, sink_name, since):
    """Send DELIVERY_ID again, or every dead-lettered (or disabled) delivery of --sink recorded --since a time.
    Each starts its sink's retry schedule from the beginning."""
    if bool(delivery_id) == bool(sink_name or since) or (not delivery_id and not (sink_name and since)):
        raise click.UsageError("give a DELIVERY_ID, or --sink NAME and --since TIME")
    try:
        ids = replay_deliveries(services(), delivery_id=delivery_id, sink=sink_name,
                                since=_since(since) if since else None)
    except ReplayError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"{len(ids)} deliver{'y' if len(ids) == 1 else 'ies'} replayed")


@sinks.command("enable")
@click.argument("name")
def enable(name):
    """Enable a sink disabled after a 410 (its stopped deliveries need `flask sinks replay --sink`)."""
    with services().session() as session:
        changed = enable_sink(session, name)
        session.commit()
    click.echo(f"sink {name} enabled" if changed else f"sink {name} was not disabled")
