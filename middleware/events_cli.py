"""``flask events``: the store events the bridge recorded — list them, replay one whose handling failed."""
from __future__ import annotations

import time

import click
from flask.cli import AppGroup
from redis.exceptions import RedisError
from sqlalchemy import select

from workers.queues import enqueue_event

from .ledger.models import InboundEvent
from .services import services

events = AppGroup("events", help="Recorded store events: list, replay.")
OUTCOMES = ("recorded", "pending", "processed", "ignored", "failed", "rejected")


@events.command("list")
@click.option("--source", help="stripe, app_store, accelbyte...")
@click.option("--outcome", type=click.Choice(OUTCOMES), help="failed: the ones whose handling gave up.")
@click.option("--limit", type=click.IntRange(1, 1000), default=50)
def list_events(source, outcome, limit):
    """The most recent events, newest first: id, source, type, outcome, detail."""
    stmt = select(InboundEvent).order_by(InboundEvent.id.desc()).limit(limit)
    if source:
        stmt = stmt.where(InboundEvent.source == source)
    if outcome:
        stmt = stmt.where(InboundEvent.outcome == outcome)
    with services().session() as session:
        for e in session.scalars(stmt):
            click.echo(f"{e.id:>8}  {e.received_at:%Y-%m-%d %H:%M:%S}  {e.source:<10} {e.event_type or '-':<36} "
                       f"{e.outcome:<9} {e.provider_event_id}  {e.detail or ''}")


@events.command("replay")
@click.argument("event_id", type=int)
def replay(event_id):
    """Handle a recorded event again (after fixing what made it fail). Safe: handling is idempotent."""
    svc = services()
    with svc.session() as session:
        row = session.get(InboundEvent, event_id)
        if row is None:
            raise click.ClickException(f"no event {event_id}")
        if row.outcome not in ("failed", "pending", "processed"):
            raise click.ClickException(f"event {event_id} is {row.outcome}: there is nothing to handle")
        row.outcome, row.attempts, row.detail = "pending", 0, f"replayed (was {row.outcome}: {row.detail})"[:2000]
        session.commit()
    try:
        enqueue_event(svc.redis, event_id, attempt=int(time.time()))  # a job id of its own
    except RedisError as exc:
        click.echo(f"recorded as pending; Redis is unreachable ({exc}): the reconciler will enqueue it")
        return
    click.echo(f"event {event_id} replayed")


google = AppGroup("google", help="Google Play: the voided-purchases poll.")


@google.command("poll-voided")
def poll_voided():
    """List every Google Play game's voided purchases now and take back what they refunded."""
    from workers.google_voided import poll_due
    for result in poll_due(services(), force=True):
        if "error" in result:
            click.echo(f"{result['namespace']}: {result['error']}")
        else:
            click.echo(f"{result['namespace']}: {result['seen']} voided purchase(s), {result['recorded']} new")
