"""``flask backfill STORE --since TIME``: ask a store what it sent and record what the bridge never saw
(middleware/stores/backfill.py). Belongs in ``middleware/cli/`` once that package exists."""
from __future__ import annotations

import click
from flask.cli import with_appcontext

from middleware.cli.table import ISO_TIME, JSON_OPTION, echo_json, progress
from middleware.services import services
from middleware.stores import backfill


@click.command("backfill")
@with_appcontext
@click.argument("store", type=click.Choice(backfill.NAMES))
@click.option("--since", type=ISO_TIME, default=None,
              help="From this time (ISO 8601, UTC unless it says otherwise); default and earliest: as far back "
                   "as the store keeps (App Store 180 days, Stripe and Google Play 30 days).")
@click.option("--until", type=ISO_TIME, default=None, help="Up to this time (default: now).")
@JSON_OPTION
def backfill_command(store, since, until, as_json):
    """Record every event STORE sent (or tried to) that the bridge never recorded: a webhook outage's gap.

    Safe to run at any time and more than once: an event already recorded (by the webhook or an earlier
    run) changes nothing."""
    since_ms = int(since.timestamp() * 1000) if since else 0
    until_ms = int(until.timestamp() * 1000) if until else None
    result = backfill.run(services(), store, since_ms, until_ms, progress=progress)
    if as_json:
        echo_json(result)
    else:
        for game in result["games"]:
            if "error" in game:
                click.echo(f"{game['namespace']}: {game['error']}")
            else:
                click.echo(f"{game['namespace']}: {game['found']} event(s) in the store's history, "
                           f"{game['gap']} never recorded before, now recorded")
        click.echo(f"{store}: gap {result['gap']} of {result['found']} event(s)")
    if any("error" in game for game in result["games"]):
        raise SystemExit(1)
