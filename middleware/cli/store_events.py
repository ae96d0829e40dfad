"""``flask events``: the store events the bridge recorded — list them, replay those whose handling failed."""
from __future__ import annotations

import time

import click
from flask.cli import AppGroup
from redis.exceptions import RedisError
from sqlalchemy import select

from middleware.cli.table import (
    ISO_TIME,
    JSON_OPTION,
    YES_OPTION,
    Column,
    echo_json,
    iso,
    plural,
    progress,
    state_style,
    table,
    when,
)
from middleware.ledger.models import InboundEvent
from middleware.services import services
from middleware.stores.google_play_voided import poll_due

events = AppGroup("events", help="Recorded store events: list, replay.")
OUTCOMES = ("recorded", "pending", "processed", "ignored", "failed", "rejected")
REPLAYABLE = ("failed", "pending", "processed")
CHUNK = 200  # events marked pending per transaction in a bulk replay

COLUMNS = (
    Column("ID", "id", align=">"), Column("RECEIVED", "received"), Column("SOURCE", "source"),
    Column("TYPE", "type", 36), Column("OUTCOME", "outcome", style=state_style),
    Column("PROVIDER EVENT", "providerEventId", 48), Column("ORDER", "fulfilmentId", None),
    Column("DETAIL", "detail", 80),
)


def _view(e: InboundEvent) -> dict:
    return {"id": e.id, "source": e.source, "providerEventId": e.provider_event_id, "type": e.event_type,
            "namespace": e.namespace, "receivedAt": iso(e.received_at), "outcome": e.outcome, "detail": e.detail,
            "attempts": e.attempts, "fulfilmentId": e.fulfilment_id, "playerId": e.player_id}


def _filtered(stmt, source, outcome, namespace, since):
    for column, value in ((InboundEvent.source, source), (InboundEvent.outcome, outcome),
                          (InboundEvent.namespace, namespace)):
        if value:
            stmt = stmt.where(column == value)
    if since is not None:
        stmt = stmt.where(InboundEvent.received_at >= since)
    return stmt


@events.command("list")
@click.option("--source", help="stripe, app_store, google_play, accelbyte, kraty...")
@click.option("--outcome", type=click.Choice(OUTCOMES), help="failed: the ones whose handling gave up.")
@click.option("--namespace", help="Only this game's events.")
@click.option("--since", type=ISO_TIME, help="Only events received at or after this ISO 8601 time.")
@click.option("--limit", type=click.IntRange(1, 1000), default=50, show_default=True)
@JSON_OPTION
def list_events(source, outcome, namespace, since, limit, as_json):
    """The most recent events, newest first: id, time, source, type, outcome, the store's id, order, detail."""
    stmt = _filtered(select(InboundEvent), source, outcome, namespace, since)
    stmt = stmt.order_by(InboundEvent.id.desc()).limit(limit)
    with services().session() as session:
        rows = [_view(e) | {"received": when(e.received_at)} for e in session.scalars(stmt)]
    if as_json:
        echo_json([{k: v for k, v in row.items() if k != "received"} for row in rows])
    else:
        click.echo(table(COLUMNS, rows, empty="no events match"))


def _mark_pending(ids: list[int]) -> dict[int, str]:
    """The events marked pending again, and each one's source (whose job handles it)."""
    sources = {}
    with services().session() as session:
        for row in session.scalars(select(InboundEvent).where(InboundEvent.id.in_(ids))):
            row.outcome, row.attempts, row.detail = "pending", 0, f"replayed (was {row.outcome}: {row.detail})"[:2000]
            sources[row.id] = row.source
        session.commit()
    return sources


@events.command("replay")
@click.argument("event_ids", metavar="[EVENT_ID]...", nargs=-1, type=int)
@click.option("--outcome", type=click.Choice(REPLAYABLE),
              help="Bulk: replay every event with this outcome (instead of EVENT_IDs).")
@click.option("--source", help="Bulk: only this store's events.")
@click.option("--namespace", help="Bulk: only this game's events.")
@click.option("--since", type=ISO_TIME, help="Bulk: only events received at or after this ISO 8601 time.")
@click.option("--limit", type=click.IntRange(1, 100000), default=10000, show_default=True,
              help="Bulk: at most this many events (oldest first).")
@YES_OPTION
def replay(event_ids, outcome, source, namespace, since, limit, yes):
    """Handle recorded events again (after fixing what made them fail). Safe: handling is idempotent.

    Give EVENT_IDs, or --outcome failed (narrowed by --source, --namespace, --since) to replay every such
    event after a confirmation (--yes skips it)."""
    svc = services()
    bulk = outcome or source or namespace or since
    if event_ids and bulk:
        raise click.UsageError("give EVENT_IDs, or --outcome (with --source, --namespace, --since) for a bulk replay")
    if event_ids:
        with svc.session() as session:
            rows = {row.id: row.outcome for row in session.scalars(
                select(InboundEvent).where(InboundEvent.id.in_(set(event_ids))))}
        for event_id in event_ids:  # every one checked before anything changes
            if event_id not in rows:
                raise click.ClickException(f"no event {event_id}")
            if rows[event_id] not in REPLAYABLE:
                raise click.ClickException(f"event {event_id} is {rows[event_id]}: there is nothing to handle")
        ids = list(dict.fromkeys(event_ids))
    else:
        if not outcome:
            raise click.UsageError("give EVENT_IDs, or --outcome (failed, pending or processed) for a bulk replay")
        stmt = _filtered(select(InboundEvent.id), source, outcome, namespace, since)
        with svc.session() as session:
            ids = list(session.scalars(stmt.order_by(InboundEvent.id).limit(limit)))
        if not ids:
            click.echo(f"no {outcome} events match")
            return
        if not yes:
            click.confirm(f"Replay {plural(len(ids), outcome + ' event')}?", abort=True, err=True)
    if len(ids) == 1:
        sources = _mark_pending(ids)
        try:
            svc.jobs.event(sources[ids[0]], ids[0], attempt=int(time.time()))  # a job id of its own
        except RedisError as exc:
            click.echo(f"recorded as pending; Redis is unreachable ({exc}): the reconciler will enqueue it")
            return
        click.echo(f"event {ids[0]} replayed")
        return
    sources = {}
    for start in range(0, len(ids), CHUNK):
        sources.update(_mark_pending(ids[start:start + CHUNK]))
    attempt = int(time.time())
    enqueued = 0
    try:
        with progress(ids, f"replaying {len(ids)} events") as bar:
            for event_id in bar:
                svc.jobs.event(sources[event_id], event_id, attempt=attempt)
                enqueued += 1
    except RedisError as exc:
        click.echo(f"{plural(len(ids), 'event')} recorded as pending, {enqueued} enqueued; Redis is unreachable "
                   f"({exc}): the reconciler will enqueue the rest")
        return
    click.echo(f"{plural(len(ids), 'event')} replayed")


google = AppGroup("google", help="Google Play: the voided-purchases poll.")


@google.command("poll-voided")
def poll_voided():
    """List every Google Play game's voided purchases now and take back what they refunded."""
    for result in poll_due(services(), force=True):
        if "error" in result:
            click.echo(f"{result['namespace']}: {result['error']}")
        else:
            click.echo(f"{result['namespace']}: {result['seen']} voided purchase(s), {result['recorded']} new")
