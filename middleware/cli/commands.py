"""``flask`` commands: migrations, the reconciler, storefront tokens; orders, events, keys and sinks are in
 their own modules (orders_cli.py...), all printing through cli_table.py (tables, ``--json``, progress)."""
from __future__ import annotations

import click
from redis.exceptions import RedisError
from flask import Flask
from flask.cli import AppGroup, with_appcontext

from config.storefronts import hash_token, new_token
from middleware.cli.backfill import backfill_command
from middleware.cli.guard import guard
from middleware.cli.table import JSON_OPTION, echo_json
from middleware.cli.store_events import events, google
from middleware.cli.imports import group as import_group
from middleware.cli.keys import keys
from middleware.ledger import migrate
from middleware.orders.reconciler import reconcile_now
from middleware.cli.orders import orders
from middleware.cli import refunds as refunds_cli  # noqa: F401  (adds `flask orders refund`)
from middleware.services import services
from middleware.cli.sinks import sinks
from middleware.cli.untraced import untraced_command

db = AppGroup("db", help="Ledger database migrations (Alembic).")
storefronts = AppGroup("storefronts", help="Third-party storefront bearer tokens.")


@db.command("upgrade")
@click.argument("revision", default="head")
def db_upgrade(revision):
    """Apply the migrations up to REVISION (default: head)."""
    migrate.upgrade(services().settings.database_url, revision)
    click.echo(f"ledger migrated to {revision}")


@db.command("downgrade")
@click.argument("revision")
def db_downgrade(revision):
    """Roll the migrations back to REVISION ('base' for an empty database)."""
    migrate.downgrade(services().settings.database_url, revision)
    click.echo(f"ledger downgraded to {revision}")


@storefronts.command("new-token")
def storefronts_new_token():
    """Print a new storefront token (give it to the storefront) and its hash (put it in KB_STOREFRONTS)."""
    token = new_token()
    click.echo(f"token:        {token}")
    click.echo(f"token_sha256: {hash_token(token)}")
    click.echo("The token is shown once; only its hash belongs in the storefronts file.")


@click.command("reconcile")
@with_appcontext
@click.option("--stale-seconds", type=float, default=None,
              help="Re-enqueue work idle this long (default: KB_RECONCILE_STALE_SECONDS).")
@JSON_OPTION
def reconcile_command(stale_seconds, as_json):
    """Re-enqueue active orders, store events, refunds and store follow-ups that nobody is working on."""
    try:
        counts = reconcile_now(services(), stale_seconds)
    except RedisError as exc:
        raise click.ClickException(f"Redis is unreachable ({exc}): nothing was enqueued") from None
    if as_json:
        echo_json(counts)
        return
    click.echo(f"{counts['stalled']} stalled order(s), {counts['enqueued']} enqueued")
    click.echo(f"{counts['events']} store event(s) re-enqueued, {counts['events_failed']} given up")
    click.echo(f"{counts['reversals']} order(s) with waiting refunds or disputes, "
               f"{counts['followups']} store follow-up(s) due")


def register(app: Flask) -> None:
    app.cli.add_command(db)
    app.cli.add_command(storefronts)
    app.cli.add_command(reconcile_command)
    app.cli.add_command(orders)
    app.cli.add_command(keys)
    app.cli.add_command(events)
    events.add_command(untraced_command)
    app.cli.add_command(google)
    app.cli.add_command(sinks)
    app.cli.add_command(import_group)
    app.cli.add_command(backfill_command)
    guard(app.cli)  # unreachable database or Redis: one line and exit status 1 (cli_guard.py)
