"""``flask events untraced``: refunds and disputes whose payment named no order (flagged by the reconciler)."""
from __future__ import annotations

import click
from flask.cli import with_appcontext

from middleware.cli.table import JSON_OPTION, Column, echo_json, table, when
from middleware.services import services
from middleware.orders.untraced import untraced_reversals

COLUMNS = (Column("RECEIVED", "received"), Column("SOURCE", "source"), Column("KIND", "kind"),
           Column("PAYMENT", "ref", None), Column("AMOUNT", "amount", align=">"), Column("CURRENCY", "currency"),
           Column("KEY", "key", None), Column("OUTCOME", "outcome", 100))


@click.command("untraced")
@click.option("--limit", type=click.IntRange(1, 1000), default=100, show_default=True)
@JSON_OPTION
@with_appcontext
def untraced_command(limit, as_json):
    """Refunds and disputes flagged untraced (KB_UNTRACED_REVERSAL_SECONDS), oldest first. Each is still applied
    if its purchase comes; else check the payment in the store (a sale the bridge did not fulfil needs nothing)."""
    with services().session() as session:
        rows = untraced_reversals(session, limit)
    if as_json:
        echo_json(rows)
    else:
        click.echo(table(COLUMNS, [row | {"received": when(row["received_at"])} for row in rows],
                         empty="no untraced refunds or disputes"))
